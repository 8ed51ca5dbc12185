"""Recorded boxes played back as a detector, so tracking, rules and the case builder can be
judged apart from any model: on a generated video's truth (``truth_replay``), the rules'
acceptance figures say what a perfect detector would give.

The pipeline hands a detector images only, so a replay learns which frame each image is by
watching the frames on their way in (``ReplayDetector.watch``) in the order they are read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from streetwatch.inference.boxes import box_iou
from streetwatch.inference.camera import Camera
from streetwatch.inference.cases import (
    CaseBuilder,
    CaseCandidate,
    EvidenceStore,
    ModelRef,
    Place,
    Source,
    distance_m,
)
from streetwatch.inference.detector import DetectorConfig
from streetwatch.inference.gps import GpsTrack
from streetwatch.inference.pipeline import run
from streetwatch.inference.rules import MOVING_CONFIRM_FRAMES, RuleEngine
from streetwatch.inference.sources import VideoSource
from streetwatch.inference.types import BGRImage, Detections, Frame
from streetwatch.models.taxonomy import TAXONOMY

Box = tuple[float, float, float, float]


class ReplayDetector:
    """Answers each frame with the boxes recorded for its time since ``start``.

    Args:
        start: The capture time of offset 0.
        boxes: Offset in seconds -> ``(class key, (x1, y1, x2, y2))`` boxes at that offset.
            A frame is matched to the nearest recorded offset within ``tolerance_s``;
            one with none gets no boxes.
        confidence: The score every replayed box gets.
    """

    def __init__(self, start: datetime, boxes: Mapping[float, Sequence[tuple[str, Box]]],
                 *, confidence: float = 0.9, tolerance_s: float = 0.02,
                 config: DetectorConfig | None = None) -> None:
        self.start = start
        self._offsets = np.array(sorted(boxes), np.float64)
        self._boxes = [boxes[t] for t in sorted(boxes)]
        self.confidence = confidence
        self.tolerance_s = tolerance_s
        self._config = config or DetectorConfig(batch=1)
        self._pending: deque[datetime] = deque()

    @property
    def config(self) -> DetectorConfig:
        return self._config

    def watch(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Pass ``frames`` through, noting each one's time for the call that sees it."""
        for frame in frames:
            self._pending.append(frame.captured_at)
            yield frame

    def __call__(self, images: Sequence[BGRImage]) -> list[Detections]:
        if len(self._pending) < len(images):
            raise RuntimeError("ReplayDetector saw an image it did not watch go by: "
                               "pass the frames through watch() first")
        return [self._at((self._pending.popleft() - self.start).total_seconds())
                for _ in images]

    def _at(self, offset_s: float) -> Detections:
        if not len(self._offsets):
            return Detections.empty()
        k = int(np.argmin(np.abs(self._offsets - offset_s)))
        if abs(self._offsets[k] - offset_s) > self.tolerance_s or not self._boxes[k]:
            return Detections.empty()
        recorded = self._boxes[k]
        return Detections(
            np.array([box for _, box in recorded], np.float32).reshape(-1, 4),
            np.full(len(recorded), self.confidence, np.float32),
            np.array([TAXONOMY.by_key(key).id for key, _ in recorded], np.int64))


def truth_replay(truth: Mapping[str, Any], **options: Any) -> ReplayDetector:
    """A replay of a generated video's truth (``streetwatch data synth-video``'s
    truth.json): every labelled object's visible box, in every frame it is labelled in."""
    times = truth["frame_times_s"]
    boxes: dict[float, list[tuple[str, Box]]] = {float(t): [] for t in times}
    for obj in truth["objects"]:
        for seen in obj["frames"]:
            x1, y1, x2, y2 = (float(v) for v in seen["box"])
            boxes[float(times[seen["frame"]])].append((seen["class"], (x1, y1, x2, y2)))
    start = datetime.fromisoformat(truth["start_utc"].replace("Z", "+00:00"))
    return ReplayDetector(start, boxes, **options)


def replay_cases(video: Path, truth: Mapping[str, Any], evidence: Path, *, fps: float,
                 camera: Camera | None = None, track: GpsTrack | None = None,
                 source_id: str = "replay",
                 confirm_frames: int = MOVING_CONFIRM_FRAMES) -> list[CaseCandidate]:
    """The case candidates a perfect detector gives on a generated ``video``: its truth
    replayed through the same tracker, rules and case builder as ``streetwatch detect``
    (a camera's zones and dwell rules, or a vehicle's GPS track), evidence in ``evidence``."""
    replay = truth_replay(truth)
    frames = VideoSource(video, fps=fps, start=replay.start, track=track)
    builder = CaseBuilder(EvidenceStore(evidence), ModelRef(name="truth", version="replay",
                                                            sha256=None),
                          Source(kind="camera" if camera else "vehicle", id=source_id),
                          fixed_location=Place(lat=camera.location.lat, lon=camera.location.lon)
                          if camera and camera.location else None)
    run(replay.watch(frames), replay, RuleEngine(camera, confirm_frames=confirm_frames),
        builder, fps=fps)
    return builder.candidates


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def score_cctv(truth: Mapping[str, Any], found: Sequence[CaseCandidate],
               tolerance_s: float = 2.0) -> dict[str, Any]:
    """The CCTV acceptance figures of a generated clip: for each event of the truth, the
    candidates of its class whose box lies on the event's object (IoU >= 0.3 with one of
    its labelled boxes while the candidate was seen), and how far their first_seen is from
    the event's start. A parking or vending event wants exactly one candidate, the parked
    car's first seen within ``tolerance_s``; a short stop wants none."""
    start = _utc(truth["start_utc"])
    times = truth["frame_times_s"]
    objects = {o["id"]: o for o in truth["objects"]}
    result: dict[str, Any] = {"candidates": len(found), "events": {}}
    for event in truth["events"]:
        labelled = objects.get(event["object"], {"frames": []})["frames"]
        matching = []
        for case in found:
            if case.category != event["class"]:
                continue
            span = ((case.first_seen - start).total_seconds() - tolerance_s,
                    (case.last_seen - start).total_seconds() + tolerance_s)
            if any(span[0] <= times[f["frame"]] <= span[1] and box_iou(f["box"], case.box) >= 0.3
                   for f in labelled):
                matching.append(case)
        offsets = [round((c.first_seen - _utc(event["start_utc"])).total_seconds(), 1)
                   for c in matching]
        expected = 0 if event["kind"] == "stop" else 1
        timely = event["kind"] != "parking" or all(abs(o) <= tolerance_s for o in offsets)
        result["events"][event["id"]] = {
            "class": event["class"], "expected": expected, "candidates": len(matching),
            "first_seen_offsets_s": offsets, "ok": len(matching) == expected and timely}
    return result


def score_drive(truth: Mapping[str, Any], found: Sequence[CaseCandidate],
                radius_m: float = 15.0) -> dict[str, Any]:
    """The dashcam acceptance figures of a generated drive: the share of the truth's
    violating objects with a candidate of their class within ``radius_m`` of where they
    stand (the case's place, or the place of one of the sightings merged into it), and the
    objects with more than one."""
    targets = [o for o in truth["objects"] if o.get("violation")]
    hits, doubles, errors = 0, 0, []
    missed: dict[str, int] = {}
    for target in targets:
        at = Place(lat=target["wgs84"][0], lon=target["wgs84"][1])
        near = sorted(min(distance_m(at, p) for p in c.places or [c.location])
                      for c in found
                      if c.location is not None and c.category in target["classes"])
        near = [d for d in near if d <= radius_m]
        hits += bool(near)
        doubles += len(near) > 1
        if near:
            errors.append(round(near[0], 1))
        else:
            key = target["classes"][0]
            missed[key] = missed.get(key, 0) + 1
    return {"violating_objects": len(targets), "found": hits,
            "found_share": round(hits / len(targets), 3) if targets else None,
            "objects_with_two_candidates": doubles, "missed_by_class": missed,
            "position_errors_m": errors, "candidates": len(found)}
