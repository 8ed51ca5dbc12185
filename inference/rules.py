"""Rules: when a track becomes a violation.

With a camera, its dwell rules decide (a vehicle standing in a no-parking zone for 300 s,
vending present for 60 s), its ``allowed`` schedules excuse (vending in the night market
from 18:00), and ``exclude`` zones are never looked at. Dashcam footage has no fixed zones:
a track seen as a case class at that class's confidence in ``confirm_frames`` frames is a
violation once it ends, whatever most of its sightings say: a car on the pavement looks like
a lawful ``vehicle`` from afar and shows where it stands only as the patrol car nears it.
Each track fires at most once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from streetwatch.inference.camera import Camera, DwellRule, ZoneIndex
from streetwatch.inference.tracking import Observation, Track
from streetwatch.inference.types import Detections
from streetwatch.models.taxonomy import TAXONOMY

# Frames per second to sample video at when none is asked for. From a moving camera a
# roadside object is in view for about a second, a poster by the kerb for a quarter of one,
# and needs MOVING_CONFIRM_FRAMES sightings. A perfect detector (benchmarks/
# video_acceptance.py --replay) found 40 of the 49 violations of a generated 30 s drive at
# 5 fps and 48 at 10; street:20261206-avg2-736 found 38 at 5 fps and 48 at 10
# (street:20261206-e55-736: 39 and 48; its weights at 640 px: 46 and 48; e50: 42 and 48).
# Sampling at 5 fps costs half the compute (benchmarks/detector_speed.py) but misses what
# passes quickly.
# A fixed camera's dwell rules count in seconds.
DEFAULT_FPS_MOVING = 10.0
DEFAULT_FPS_FIXED = 2.0


@dataclass(frozen=True)
class Firing:
    """A track that just became a violation, and why."""

    track: Track
    category: str
    rule: str
    time: datetime
    observed: int | None = None

    @property
    def evidence(self) -> Observation:
        """The sighting the case shows: the most confident one of the class that made the
        track a violation (``observed``), else the track's most confident."""
        if self.observed is not None:
            seen = self.track.best_of(self.observed)
            if seen is not None:
                return seen
        return self.track.best


# Sightings a moving camera's track needs to be a candidate. A roadside poster is big enough
# to label for about half a second as a patrol car passes: two frames at 5 fps. On a
# generated drive replayed as a perfect detector, 3 confirmations found 57 % of the
# violations, 2 found 94 %.
MOVING_CONFIRM_FRAMES = 2


@dataclass
class RuleEngine:
    """Decides, frame by frame, which tracks are violations.

    Attributes:
        camera: The fixed camera's zones and rules; None for dashcam and photo footage.
        min_confidence: Per-class confidence a track's best sighting must reach (the
            camera's ``rules.min_confidence`` wins).
        confirm_frames: Without a camera, sightings at that confidence a track needs.
    """

    camera: Camera | None = None
    min_confidence: dict[str, float] = field(default_factory=dict)
    default_confidence: float = 0.4
    confirm_frames: int = MOVING_CONFIRM_FRAMES
    fired: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._zones = ZoneIndex(self.camera.zones) if self.camera else None
        self._tz = ZoneInfo(self.camera.timezone) if self.camera else None
        if self.camera:
            self.min_confidence = {**self.min_confidence, **self.camera.rules.min_confidence}

    def needed(self, key: str) -> float:
        """The confidence a sighting of class ``key`` needs to count."""
        return self.min_confidence.get(key, self.default_confidence)

    def keep(self, detections: Detections, width: int, height: int) -> Detections:
        """Drop detections standing in an ``exclude`` zone (before tracking)."""
        if self._zones is None or not len(detections):
            return detections
        members = self._zones.member(detections.xyxy, width, height)
        return detections[np.array(["exclude" not in m for m in members], bool)]

    def judge(self, tracks: list[Track], now: datetime, width: int,
              height: int) -> list[Firing]:
        """The live tracks that become violations at ``now`` by the camera's rules (each at
        most once); without a camera, none: see ``judge_ended``."""
        if self.camera is None:
            return []
        candidates = [t for t in tracks if t.tracker_id not in self.fired
                      and t.last_seen == now]
        firings = self._judge_camera(candidates, now, width, height)
        self.fired |= {f.track.tracker_id for f in firings}
        return firings

    def forget(self, tracks: list[Track]) -> None:
        """Tracks that are over can fire no more: drop them from ``fired`` (a camera
        stream runs for weeks)."""
        self.fired -= {t.tracker_id for t in tracks}

    def judge_ended(self, tracks: list[Track]) -> list[Firing]:
        """Without a camera, the tracks just over (a photo's detections are over at once)
        that were confirmed as violations; with one, none: its rules judge live tracks."""
        if self.camera is not None:
            return []
        firings = []
        for track in tracks:
            if track.tracker_id in self.fired:
                continue
            class_id = self._confirmed(track)
            if class_id is not None:
                firings.append(Firing(track, TAXONOMY.by_id(class_id).key,
                                      f"confirmed in {self.confirm_frames} frame"
                                      f"{'s' if self.confirm_frames != 1 else ''}",
                                      track.last_seen, observed=class_id))
        self.fired |= {f.track.tracker_id for f in firings}
        return firings

    def _confirmed(self, track: Track) -> int | None:
        """The case class a moving camera's track was seen as, at that class's confidence,
        in ``confirm_frames`` sightings or more; of several, the one with the most summed
        confidence."""
        sure: dict[int, int] = defaultdict(int)
        weight: dict[int, float] = defaultdict(float)
        for o in track.observations:
            entry = TAXONOMY.by_id(o.class_id)
            if entry.can_be_case and o.confidence >= self.needed(entry.key):
                sure[o.class_id] += 1
                weight[o.class_id] += o.confidence
        confirmed = [k for k, n in sure.items() if n >= self.confirm_frames]
        return max(confirmed, key=weight.__getitem__) if confirmed else None

    def _judge_camera(self, tracks: list[Track], now: datetime, width: int,
                      height: int) -> list[Firing]:
        assert self.camera is not None and self._zones is not None and self._tz is not None
        if not tracks:
            return []
        boxes = np.stack([t.last.xyxy for t in tracks])
        members = self._zones.member(boxes, width, height)
        local = now.astimezone(self._tz)
        firings = []
        for track, zones in zip(tracks, members, strict=True):
            key = TAXONOMY.by_id(track.class_id).key
            if track.best.confidence < self.needed(key):
                continue
            for rule in self.camera.rules.dwell:
                if rule.cls != key or (rule.zone != "any" and rule.zone not in zones):
                    continue
                if _held(rule, track, now) < rule.seconds:
                    continue
                if any(a.cls in (key, rule.category) and (a.zone == "any" or a.zone in zones)
                       and a.covers(local)
                       for a in self.camera.rules.allowed):
                    continue
                firings.append(Firing(track, rule.category, _describe(rule), now))
                break
        return firings


def _held(rule: DwellRule, track: Track, now: datetime) -> float:
    if rule.stationary:
        return track.stationary_for(now)
    return (now - track.first_seen).total_seconds()


def _describe(rule: DwellRule) -> str:
    how = "stationary" if rule.stationary else "present"
    where = "anywhere" if rule.zone == "any" else f"in {rule.zone}"
    becomes = f" -> {rule.becomes}" if rule.becomes else ""
    return f"{rule.cls} {how} {where} >= {rule.seconds:g} s{becomes}"
