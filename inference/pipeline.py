"""Footage to case candidates: frames -> detector -> exclude zones -> tracker -> rules -> cases.

Video and streams are tracked, so a violation is judged over time (dwell, confirmation over
several frames). Photos are independent shots: each detection stands alone and is a
candidate when it is confident enough.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.inference.cases import CaseBuilder, draw_box
from streetwatch.inference.detector import Detects
from streetwatch.inference.geolocate import Lens, Sighting, locate
from streetwatch.inference.rules import Firing, RuleEngine
from streetwatch.inference.sources import read_ahead
from streetwatch.inference.tracking import Observation, Track, Tracker, TrackerConfig
from streetwatch.inference.types import Detections, Frame, Location
from streetwatch.models.taxonomy import TAXONOMY

# Sightings kept per track to place it: the latest, nearest the object, turn the most.
MAX_SIGHTINGS = 50


@dataclass
class RunStats:
    """What a run saw."""

    frames: int = 0
    detections: dict[str, int] = field(default_factory=dict)


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    iterator = iter(frames)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class VideoSink:
    """An annotated copy of the sampled frames as an MP4."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, detections: Detections) -> None:
        image = frame.image
        for k in range(len(detections)):
            key = TAXONOMY.by_id(int(detections.class_id[k])).key
            image = draw_box(image, tuple(float(v) for v in detections.xyxy[k]), key,
                             float(detections.confidence[k]))
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"),
                                           self.fps, (w, h))
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class _TrackViews:
    """What a run remembers of each live track to make its case: the frame of its most
    confident sighting as each class it was seen as (the evidence) and, from a moving
    camera, where it was seen from.

    A moving camera's case is placed where the rays of the track's sightings cross (see
    :mod:`streetwatch.inference.geolocate`), else where its last sighting was taken: a
    forward camera is nearest the object as it leaves the frame's side.
    """

    def __init__(self, moving: bool, lens: Lens) -> None:
        self.moving, self.lens = moving, lens
        self._best: dict[int, dict[int, Frame]] = {}
        self._last_place: dict[int, Location | None] = {}
        self._sightings: dict[int, list[Sighting]] = {}

    def seen(self, track: Track, frame: Frame, box: npt.NDArray[np.float32]) -> None:
        tracker_id = track.tracker_id
        seen_as = track.last.class_id
        if track.last is track.best_of(seen_as):
            self._best.setdefault(tracker_id, {})[seen_as] = frame
        self._last_place[tracker_id] = frame.location
        if self.moving and frame.location is not None:
            views = self._sightings.setdefault(tracker_id, [])
            views.append(Sighting(frame.location, float(box[0]), float(box[2]),
                                  frame.image.shape[1]))
            del views[:-MAX_SIGHTINGS]

    def evidence(self, firing: Firing) -> Frame:
        """The frame of the firing's evidence sighting."""
        return self._best[firing.track.tracker_id][firing.evidence.class_id]

    def place(self, tracker_id: int) -> Location | None:
        found = locate(self._sightings.get(tracker_id, []), self.lens)
        return Location(*found) if found is not None else self._last_place[tracker_id]

    def forget(self, tracker_id: int) -> None:
        for views in (self._best, self._last_place, self._sightings):
            views.pop(tracker_id, None)


def run(frames: Iterable[Frame], detector: Detects, rules: RuleEngine, builder: CaseBuilder,
        *, fps: float, single_frame: bool = False, sink: VideoSink | None = None,
        progress: Callable[[int], object] = lambda n: None,
        stats: RunStats | None = None,
        on_inference: Callable[[float], object] = lambda seconds: None,
        on_frame: Callable[[Frame, Detections], object] = lambda frame, found: None,
        ahead: int = 2, lens: Lens | None = None) -> RunStats:
    """Process every frame; candidates accumulate in ``builder`` and counts in ``stats``
    (pass one in to keep the counts of a run that is interrupted); ``on_inference`` gets
    the detector's seconds per frame of each call (for metrics); ``on_frame`` sees each
    frame with the detections the rules kept (outside exclude zones). Frames are read
    ``ahead`` of the detector by a thread of their own (0: in this thread). ``lens`` is a
    moving camera's (default :class:`Lens`), to place what it sees."""
    stats = stats if stats is not None else RunStats()
    moving = rules.camera is None
    tracker = None if single_frame else Tracker(TrackerConfig(fps=fps, moving=moving))
    views = _TrackViews(moving, lens or Lens())

    def close(ended: list[Track]) -> None:
        for firing in rules.judge_ended(ended):
            tracker_id = firing.track.tracker_id
            builder.add(firing, views.evidence(firing), views.place(tracker_id))
        rules.forget(ended)
        for track in ended:
            views.forget(track.tracker_id)

    photo_ids = itertools.count(1)
    try:
        for chunk in _batches(read_ahead(frames, max(ahead, detector.config.batch)
                                         if ahead else 0), detector.config.batch):
            started = time.perf_counter()
            found = detector([f.image for f in chunk])
            on_inference((time.perf_counter() - started) / len(chunk))
            for frame, raw in zip(chunk, found, strict=True):
                builder.see(frame)
                h, w = frame.image.shape[:2]
                detections = rules.keep(raw, w, h)
                on_frame(frame, detections)
                for cls in detections.class_id.tolist():
                    key = TAXONOMY.by_id(int(cls)).key
                    stats.detections[key] = stats.detections.get(key, 0) + 1
                if tracker is None:  # a photo's detections are over at once
                    for firing in rules.judge_ended([_photo_track(next(photo_ids), frame,
                                                                  detections, k)
                                                     for k in range(len(detections))]):
                        builder.add(firing, frame)
                    shown = detections
                else:
                    shown = tracker.update(detections, frame.captured_at)
                    ids = shown.tracker_id.tolist() if shown.tracker_id is not None else []
                    for k, tracker_id in enumerate(ids):
                        views.seen(tracker.tracks[int(tracker_id)], frame, shown.xyxy[k])
                    firings = rules.judge(list(tracker.tracks.values()), frame.captured_at, w, h)
                    for firing in firings:
                        builder.add(firing, views.evidence(firing))
                    close(tracker.expire(frame.captured_at))
                if sink is not None:
                    sink.write(frame, shown)
                stats.frames += 1
                progress(1)
    except KeyboardInterrupt:  # a stream stopped by hand: what it saw is over too
        if tracker is not None:
            close(tracker.expire(None))
        raise
    if tracker is not None:
        close(tracker.expire(None))  # the footage ended: every track is over
    return stats


def _photo_track(tracker_id: int, frame: Frame, detections: Detections, k: int) -> Track:
    return Track(tracker_id, [Observation(frame.captured_at, detections.xyxy[k],
                                          float(detections.confidence[k]),
                                          int(detections.class_id[k]))])
