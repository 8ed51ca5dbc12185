"""Tracking: ByteTrack (supervision's) gives boxes identities across frames; on top of it,
tracks remember their observations, notice when an object stands still, and pick up their
old identity when an object reappears after an occluder hid it for longer than ByteTrack
keeps a lost track.

From a moving vehicle, roadside objects near the camera sweep across the image faster than
their own size between sampled frames (a poster 20 px wide moves 100 px in 0.2 s), so box
overlap, which ByteTrack matches on, cannot follow them. With ``moving`` set, a box ByteTrack
calls new is linked by motion instead: to the same-class track seen in the last sampled
frame whose predicted position lies within a few box sizes, scale change plausible.

ByteTrack counts frames, not seconds; frames here are sampled at ``fps``, so its buffers are
set from seconds. Matching is class-agnostic (a car flickering between ``vehicle`` and
``illegal_parking`` is one car); a track's class is the confidence-weighted vote of its
observations.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from streetwatch.inference.boxes import box_iou
from streetwatch.inference.types import Detections

Box = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Observation:
    """One sighting of a tracked object."""

    time: datetime
    xyxy: Box
    confidence: float
    class_id: int


@dataclass
class Track:
    """An object followed over time."""

    tracker_id: int
    observations: list[Observation] = field(default_factory=list)
    stationary_since: datetime | None = None
    _best: dict[int, Observation] = field(default_factory=dict, repr=False, compare=False)

    def add(self, observation: Observation, keep: int) -> None:
        """Append a sighting, keeping at most ``keep`` (every other one of the older half
        is thinned out; each class's most confident is remembered even when thinned)."""
        self._bests()
        self.observations.append(observation)
        self._consider(observation)
        if len(self.observations) > keep:
            del self.observations[1:len(self.observations) // 2:2]

    def _bests(self) -> dict[int, Observation]:
        """Each class's most confident sighting, the first of equals (worked out from the
        observations once when the track was built with them rather than by ``add``)."""
        if not self._best:
            for o in self.observations:
                self._consider(o)
        return self._best

    def _consider(self, o: Observation) -> None:
        known = self._best.get(o.class_id)
        if known is None or o.confidence > known.confidence:
            self._best[o.class_id] = o

    @property
    def first_seen(self) -> datetime:
        return self.observations[0].time

    @property
    def last_seen(self) -> datetime:
        return self.observations[-1].time

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    @property
    def best(self) -> Observation:
        """The most confident sighting (the evidence frame); the first of equals."""
        return min(self._bests().values(), key=lambda o: (-o.confidence, o.time))

    def best_of(self, class_id: int) -> Observation | None:
        """The most confident sighting as ``class_id``, if it was ever seen as that."""
        return self._bests().get(class_id)

    @property
    def class_id(self) -> int:
        """The class with the largest summed confidence."""
        votes: dict[int, float] = defaultdict(float)
        for o in self.observations:
            votes[o.class_id] += o.confidence
        return max(votes, key=lambda k: votes[k])

    def stationary_for(self, now: datetime) -> float:
        """Seconds the object has stood still, as of ``now``."""
        if self.stationary_since is None:
            return 0.0
        return (now - self.stationary_since).total_seconds()


def _centre(box: Box) -> npt.NDArray[np.float32]:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)


def _size(box: Box) -> float:
    """The geometric mean of a box's width and height (at least a pixel)."""
    return float(np.sqrt(max(1.0, float(box[2] - box[0])) * max(1.0, float(box[3] - box[1]))))


def _predicted(track: Track, time: datetime) -> npt.NDArray[np.float32]:
    """Where a track's centre should be at ``time``: its last centre moved on at its last
    velocity, grown as its box grew (an object nearing the camera speeds up in the image);
    a track seen once predicts its last centre."""
    last = track.last
    if len(track.observations) < 2:
        return _centre(last.xyxy)
    before = track.observations[-2]
    span = (last.time - before.time).total_seconds()
    if span <= 0:
        return _centre(last.xyxy)
    growth = _size(last.xyxy) / _size(before.xyxy)
    velocity = (_centre(last.xyxy) - _centre(before.xyxy)) / span * growth
    return _centre(last.xyxy) + velocity * np.float32((time - last.time).total_seconds())


@dataclass(frozen=True)
class TrackerConfig:
    """How tracks are made, kept and judged still.

    Attributes:
        fps: Rate of the frames given to the tracker.
        activation: Minimum confidence for a detection to start a track.
        lost_s: Seconds ByteTrack keeps predicting a lost track.
        relink_s: Seconds after which a vanished track can still be re-linked by position.
        relink_iou: Box IoU with a vanished track's last box that re-links a new track.
        still_window_s: Span over which an object must have stayed put to be stationary.
        still_fraction: How far its centre may move in that span, as a fraction of its
            box's smaller side (boxes jitter by a few pixels even on a parked car).
        max_observations: Observations kept per track (the oldest are thinned out).
        moving: The camera moves (dashcam): link boxes ByteTrack cannot by motion.
        motion_gate: How far, in box sizes (the geometric mean of width and height of the
            larger box), a box may lie from a track's predicted position to continue it.
        motion_scale: Largest size ratio between a track's last box and its continuation.
    """

    fps: float
    activation: float = 0.25
    lost_s: float = 3.0
    relink_s: float = 120.0
    relink_iou: float = 0.5
    still_window_s: float = 10.0
    still_fraction: float = 0.15
    max_observations: int = 2000
    moving: bool = False
    motion_gate: float = 4.0
    motion_scale: float = 2.0


class Tracker:
    """ByteTrack plus identities across long occlusions and stationary-object detection."""

    def __init__(self, config: TrackerConfig) -> None:
        import supervision as sv

        self.config = config
        with warnings.catch_warnings():  # sv.ByteTrack: see README, "Libraries"
            warnings.simplefilter("ignore", FutureWarning)
            self._byte: Any = sv.ByteTrack(
                track_activation_threshold=config.activation,
                lost_track_buffer=max(1, round(config.lost_s * 30)),
                frame_rate=config.fps,
                minimum_consecutive_frames=1,
            )
        self._sv = sv
        self.tracks: dict[int, Track] = {}
        self._alias: dict[int, int] = {}  # ByteTrack id -> our (re-linked) id
        self._next_fresh = 1 << 40  # ids no ByteTrack count reaches

    def update(self, detections: Detections, time: datetime) -> Detections:
        """Track one frame's detections; returns them with ``tracker_id`` (untracked dropped)."""
        sv_in = self._sv.Detections(xyxy=detections.xyxy.astype(np.float32),
                                    confidence=detections.confidence,
                                    class_id=detections.class_id.astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            sv_out = self._byte.update_with_detections(sv_in)
        claimed: set[int] = set()
        chosen = []
        for byte_id, box, cls in zip(sv_out.tracker_id, sv_out.xyxy, sv_out.class_id,
                                     strict=True):
            ours = self._identity(int(byte_id), box, int(cls), time, claimed)
            if ours in claimed:  # two boxes of one frame on one identity: split them
                ours = self._alias[int(byte_id)] = self._fresh()
            claimed.add(ours)
            chosen.append(ours)
        tracked = Detections(sv_out.xyxy.astype(np.float32),
                             sv_out.confidence.astype(np.float32),
                             sv_out.class_id.astype(np.int64), np.array(chosen, np.int64))
        if self.config.moving:
            tracked = self._take_the_rest(detections, tracked, time, claimed)
        ids = tracked.tracker_id
        assert ids is not None
        for k in range(len(tracked)):
            track = self.tracks.setdefault(int(ids[k]), Track(int(ids[k])))
            track.add(Observation(time, tracked.xyxy[k], float(tracked.confidence[k]),
                                  int(tracked.class_id[k])), self.config.max_observations)
            self._judge_still(track)
        return tracked

    def _take_the_rest(self, given: Detections, tracked: Detections, time: datetime,
                       claimed: set[int]) -> Detections:
        """From a moving camera, track the confident boxes ByteTrack held back: it shows a
        new track only once a second frame overlaps it, which a box sweeping past never
        does. Each continues a track by motion, or starts one."""
        shown = {tuple(box) for box in tracked.xyxy.tolist()}
        rest = [k for k in range(len(given)) if tuple(given.xyxy[k].tolist()) not in shown
                and given.confidence[k] >= self.config.activation]
        if not rest:
            return tracked
        ids = []
        for k in rest:
            ours = self._motion_link(given.xyxy[k], int(given.class_id[k]), time, claimed)
            ours = self._fresh() if ours is None else ours
            claimed.add(ours)
            ids.append(ours)
        extra = given[np.array(rest)]
        assert tracked.tracker_id is not None
        return Detections(np.concatenate([tracked.xyxy, extra.xyxy]),
                          np.concatenate([tracked.confidence, extra.confidence]),
                          np.concatenate([tracked.class_id, extra.class_id]),
                          np.concatenate([tracked.tracker_id, np.array(ids, np.int64)]))

    def _fresh(self) -> int:
        self._next_fresh += 1
        return self._next_fresh

    def _identity(self, byte_id: int, box: Box, class_id: int, time: datetime,
                  claimed: set[int]) -> int:
        """Our id for a ByteTrack id: a new one re-links to a vanished track at the same place
        (one not seen in this frame, nor claimed by another box of it), or, from a moving
        camera, to the track whose motion leads there."""
        if byte_id in self._alias:
            return self._alias[byte_id]
        if self.config.moving:
            moved = self._motion_link(box, class_id, time, claimed)
            if moved is not None:
                self._alias[byte_id] = moved
                return moved
        horizon = time - timedelta(seconds=self.config.relink_s)
        best, best_iou = byte_id, self.config.relink_iou
        for track in self.tracks.values():
            if track.tracker_id in claimed or track.last_seen >= time \
                    or track.last_seen < horizon:
                continue
            iou = box_iou(track.last.xyxy, box)
            if iou >= best_iou:
                best, best_iou = track.tracker_id, iou
        self._alias[byte_id] = best
        return best

    def _motion_link(self, box: Box, class_id: int, time: datetime,
                     claimed: set[int]) -> int | None:
        """The same-class track seen in the previous sampled frame (and not since) whose
        predicted box lies nearest ``box``, within the gate; None if there is none."""
        period = 1.0 / self.config.fps
        best, best_cost = None, self.config.motion_gate
        size = _size(box)
        for track in self.tracks.values():
            gap = (time - track.last_seen).total_seconds()
            if track.tracker_id in claimed or not 0 < gap <= 1.5 * period \
                    or track.class_id != class_id:
                continue
            last = track.last.xyxy
            ratio = size / _size(last)
            if not 1 / self.config.motion_scale <= ratio <= self.config.motion_scale:
                continue
            cost = float(np.linalg.norm(_centre(box) - _predicted(track, time))) \
                / max(size, _size(last))
            if cost < best_cost:
                best, best_cost = track.tracker_id, cost
        return best

    def _judge_still(self, track: Track) -> None:
        now, current = track.last_seen, track.last
        size = float(min(current.xyxy[2] - current.xyxy[0], current.xyxy[3] - current.xyxy[1]))
        limit = max(2.0, self.config.still_fraction * size)
        centre = _centre(current.xyxy)
        since = now
        for o in reversed(track.observations):
            if float(np.linalg.norm(_centre(o.xyxy) - centre)) > limit:
                break
            since = o.time
        spanned = (now - since).total_seconds() >= self.config.still_window_s
        track.stationary_since = since if spanned else None

    def expire(self, now: datetime | None) -> list[Track]:
        """Remove and return the tracks that are over: not seen for ``relink_s`` (for
        ``lost_s`` from a moving camera, whose view has moved on); every track when ``now``
        is None (the footage ended)."""
        keep = self.config.lost_s if self.config.moving else self.config.relink_s
        done = [t for t in self.tracks.values()
                if now is None or t.last_seen < now - timedelta(seconds=keep)]
        for track in done:
            del self.tracks[track.tracker_id]
        if done:  # a stream runs for weeks: forget the ByteTrack ids of tracks now over
            over = {t.tracker_id for t in done}
            self._alias = {b: ours for b, ours in self._alias.items() if ours not in over}
        return done
