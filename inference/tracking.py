"""Tracking: ByteTrack (supervision's) gives boxes identities across frames; on top of it,
tracks remember their observations, notice when an object stands still, and pick up their
old identity when an object reappears after an occluder hid it for longer than ByteTrack
keeps a lost track.

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
        """The most confident sighting (the evidence frame)."""
        return max(self.observations, key=lambda o: o.confidence)

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
    """

    fps: float
    activation: float = 0.25
    lost_s: float = 3.0
    relink_s: float = 120.0
    relink_iou: float = 0.5
    still_window_s: float = 10.0
    still_fraction: float = 0.15
    max_observations: int = 2000


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
        for byte_id, box in zip(sv_out.tracker_id, sv_out.xyxy, strict=True):
            ours = self._identity(int(byte_id), box, time, claimed)
            if ours in claimed:  # two boxes of one frame on one identity: split them
                ours = self._alias[int(byte_id)] = self._fresh()
            claimed.add(ours)
            chosen.append(ours)
        ids = np.array(chosen, np.int64)
        tracked = Detections(sv_out.xyxy.astype(np.float32),
                             sv_out.confidence.astype(np.float32),
                             sv_out.class_id.astype(np.int64), ids)
        for k in range(len(tracked)):
            track = self.tracks.setdefault(int(ids[k]), Track(int(ids[k])))
            track.observations.append(Observation(time, tracked.xyxy[k],
                                                  float(tracked.confidence[k]),
                                                  int(tracked.class_id[k])))
            if len(track.observations) > self.config.max_observations:
                del track.observations[1:len(track.observations) // 2:2]
            self._judge_still(track)
        return tracked

    def _fresh(self) -> int:
        self._next_fresh += 1
        return self._next_fresh

    def _identity(self, byte_id: int, box: Box, time: datetime, claimed: set[int]) -> int:
        """Our id for a ByteTrack id: a new one re-links to a vanished track at the same place
        (one not seen in this frame, nor claimed by another box of it)."""
        if byte_id in self._alias:
            return self._alias[byte_id]
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

    def expire(self, now: datetime) -> list[Track]:
        """Remove and return the tracks not seen for ``relink_s``: they are over."""
        horizon = now - timedelta(seconds=self.config.relink_s)
        done = [t for t in self.tracks.values() if t.last_seen < horizon]
        for track in done:
            del self.tracks[track.tracker_id]
        return done
