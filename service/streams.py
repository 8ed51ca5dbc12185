"""Camera stream workers: one thread per running camera, reading its stream through the
detection pipeline with the camera's zones and rules, and storing cases as they fire."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from streetwatch.inference.camera import Camera
from streetwatch.inference.cases import (
    CaseBuilder,
    CaseCandidate,
    EvidenceStore,
    ModelRef,
    Place,
    Source,
)
from streetwatch.inference.clips import ClipRecorder
from streetwatch.inference.detector import Detector, DetectorConfig
from streetwatch.inference.pipeline import run
from streetwatch.inference.rules import Firing, RuleEngine
from streetwatch.inference.sources import StreamSource
from streetwatch.inference.types import BGRImage, Detections, Frame, Location
from streetwatch.service.jobs import FrameSampler, Worker, store_cases

log = logging.getLogger(__name__)


class _StoringBuilder(CaseBuilder):
    """A case builder that writes each new candidate at once (a stream has no end to wait
    for) and extends the stored case when a firing merges into it. Stored candidates are
    kept in memory only while a firing could still merge into them (two
    ``merge_window_s``): a camera runs for weeks."""

    def __init__(self, store: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs, fold=False)  # a stored case stays one
        self._store = store

    def add(self, firing: Firing, best: Frame,
            nearest: Location | None = None) -> CaseCandidate | None:
        candidate = super().add(firing, best, nearest)
        if candidate is not None:
            self._store([candidate])
        else:
            merged = next(c for c in self.candidates if firing.track.tracker_id in c.tracks)
            self._store([merged], update=True)
        # a firing merges into a case last seen within the window of its track's first
        # sighting; two windows back leaves room for a track in view a whole window
        horizon = firing.time - timedelta(seconds=2 * self.merge_window_s)
        self.candidates = [c for c in self.candidates if c.last_seen >= horizon]
        return candidate


class FollowPromoted:
    """The promoted model for a stream that never ends: between batches, at most every
    ``check_s``, it looks whether another model was promoted (or rolled back to) and swaps
    to it; the cases built from then on record the new model."""

    def __init__(self, jobs: Worker, builder: CaseBuilder, check_s: float = 2.0) -> None:
        self.jobs, self.builder, self.check_s = jobs, builder, check_s
        self.ref, self.current = jobs.detector()
        self._checked = time.monotonic()

    @property
    def config(self) -> DetectorConfig:
        return self.current.config

    def __call__(self, images: Sequence[BGRImage]) -> list[Detections]:
        if time.monotonic() - self._checked >= self.check_s:
            self._checked = time.monotonic()
            try:
                ref, detector = self.jobs.detector()
            except Exception:  # a promotion that cannot load must not stop the camera
                log.exception("camera stream keeps %s: the promoted model cannot be loaded",
                              self.ref)
                ref, detector = self.ref, self.current
            if ref != self.ref:
                log.info("camera stream switches from %s to %s", self.ref, ref)
                self.ref, self.current = ref, detector
                self.builder.model = _model_ref(detector)
        return self.current(images)


def _model_ref(detector: Detector) -> ModelRef:
    info = detector.info
    return ModelRef(name=info.name, version=info.version, sha256=info.sha256)


class CameraWorker:
    """Runs one camera's stream until stopped."""

    def __init__(self, camera_id: str, url: str, fps: float, config: dict[str, Any],
                 jobs: Worker) -> None:
        self.camera = Camera.model_validate({**config, "id": camera_id})
        self.url, self.fps, self.jobs = url, fps, jobs
        self.stream = StreamSource(url, fps=fps, source_id=camera_id)
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera {camera_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stream.stop()
        self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            _ref, detector = self.jobs.detector()
            services = self.jobs.services
            location = self.camera.location
            builder = _StoringBuilder(
                lambda cases, update=False: store_cases(services.sessions, None, cases,
                                                        update=update),
                evidence=EvidenceStore(services.evidence), model=_model_ref(detector),
                source=Source(kind="camera", id=self.camera.id),
                fixed_location=Place(lat=location.lat, lon=location.lon) if location else None,
                clips=ClipRecorder(services.clip_seconds, fps=self.fps)
                if services.clip_seconds > 0 else None, annotate=False)
            metrics = services.metrics
            # the service's case confidence, unless the camera's rules say otherwise
            rules = RuleEngine(self.camera, default_confidence=services.case_conf)
            sampler = FrameSampler(builder, None, services.sample_rate, rules.needed)

            def sample(frame: Frame, detections: Detections) -> None:
                sampler(frame, detections)
                if sampler.rows:  # a stream never ends: store samples as they come
                    store_cases(services.sessions, None, [], samples=sampler.take())

            run(self.stream, FollowPromoted(self.jobs, builder), rules,
                builder, fps=self.fps, on_frame=sample,
                progress=metrics.frames.inc if metrics else lambda n: None,
                on_inference=metrics.inference_seconds.observe if metrics else lambda s: None)
        except Exception as exc:  # report it on the camera; never take the service down
            log.exception("camera %s stopped", self.camera.id,
                          extra={"camera_id": self.camera.id})
            self.error = str(exc)


class StreamWorkers:
    """The running camera workers of one app."""

    def __init__(self, jobs: Worker) -> None:
        self.jobs = jobs
        self.workers: dict[str, CameraWorker] = {}

    def start(self, camera_id: str, url: str, fps: float, config: dict[str, Any]) -> None:
        self.stop(camera_id)
        worker = CameraWorker(camera_id, url, fps, config, self.jobs)
        worker.start()
        self.workers[camera_id] = worker

    def stop(self, camera_id: str) -> None:
        worker = self.workers.pop(camera_id, None)
        if worker is not None:
            worker.stop()

    def stop_all(self) -> None:
        for camera_id in list(self.workers):
            self.stop(camera_id)

    def status(self, camera_id: str) -> dict[str, Any]:
        worker = self.workers.get(camera_id)
        if worker is None:
            return {"worker": "stopped"}
        return {"worker": "running" if worker.alive else "failed", "error": worker.error,
                "reconnects": worker.stream.reconnects, "dropped": worker.stream.dropped}



