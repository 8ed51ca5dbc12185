"""Jobs: checking uploads by their content, and the worker that turns queued jobs into cases.

The worker runs a few job threads per app. On start it puts jobs left ``running`` by a crash
back in the queue; a job re-run yields the same case ids (they derive from the footage), and a case
already stored is not stored again, so a restart never duplicates cases.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import insert, inspect, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.inference.cases import (
    MERGE_WINDOW_S,
    CaseBuilder,
    CaseCandidate,
    EvidenceStore,
    ModelRef,
    Place,
    Source,
    same_problem,
)
from streetwatch.inference.clips import ClipRecorder
from streetwatch.inference.detector import Detector, DetectorConfig, ModelError
from streetwatch.inference.geolocate import Lens
from streetwatch.inference.gps import TrackError, read_track
from streetwatch.inference.pipeline import run
from streetwatch.inference.rules import DEFAULT_FPS_MOVING, MOVING_CONFIRM_FRAMES, RuleEngine
from streetwatch.inference.sources import SourceError, VideoSource, probe_video, read_photo
from streetwatch.inference.types import Detections, Frame, Location
from streetwatch.models.registry import Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.db import AuditEntry, Base, Case, FrameRow, Job, Upload, utcnow
from streetwatch.service.events import JobEvents
from streetwatch.service.state import Metrics
from streetwatch.service.store import Store

log = logging.getLogger(__name__)
CASE_CLASS_IDS = frozenset(c.id for c in TAXONOMY if c.can_be_case)
PHOTO_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO"})
OPEN_FORMATS = ["JPEG", "PNG", "WEBP", "BMP", "TIFF"]  # the decoders (MPO opens as JPEG)
# The first bytes of those formats (WEBP is RIFF....WEBP): a file is judged by them, not
# by its name, before any decoder (or a plugin another library registered) sees it.
_PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")


class UploadError(ValueError):
    """An upload refused for its content; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def check_photo(path: Path, max_pixels: int) -> tuple[int, int]:
    """Judge a stored file by its bytes: a photo of an accepted format, no larger than
    ``max_pixels`` (checked from the header, before any decoding), fully decodable.

    Raises:
        UploadError: 415 for something that is not a photo, 413 for too many pixels, 422
            for a damaged photo.
    """
    from PIL import Image

    if path.stat().st_size == 0:
        raise UploadError("the file is empty", 422)
    with path.open("rb") as handle:
        head = handle.read(12)
    if not any(head.startswith(magic) for magic in _PHOTO_MAGIC) \
            and not (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise UploadError("not an image (judged by its content)", 415)
    try:
        with Image.open(path, formats=OPEN_FORMATS) as image:
            kind, (width, height) = image.format, image.size
            if kind not in PHOTO_FORMATS:
                raise UploadError(f"{kind} images are not accepted", 415)
            if width * height > max_pixels:
                raise UploadError(f"{width}x{height} is more than {max_pixels} pixels", 413)
            # a JPEG decoded at 1/8 scale still has every entropy-coded block read (where
            # damage shows), at less than half the cost; the worker decodes it in full
            image.draft("RGB", (width // 8, height // 8))
            image.load()
    except UploadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own, far larger limit
        raise UploadError(f"more than {max_pixels} pixels ({exc})", 413) from None
    except Exception as exc:  # Pillow raises many types on bad bytes
        if "cannot identify" in str(exc):
            raise UploadError("not an image (judged by its content)", 415) from None
        raise UploadError(f"damaged image ({exc})", 422) from None
    return width, height


def check_video(path: Path, max_seconds: float) -> float:
    """Judge a stored file by its bytes: a decodable video no longer than ``max_seconds``.

    Raises:
        UploadError: 415 for something that is not a video, 413 for too long.
    """
    try:
        info = probe_video(path)
    except SourceError as exc:
        message = str(exc).split(": ", 1)[-1]
        raise UploadError(message, 415) from None
    seconds = float(info.seconds)
    if seconds > max_seconds:
        raise UploadError(f"{seconds:.0f} s is longer than the limit of {max_seconds:.0f} s",
                          413)
    return seconds


def check_track(path: Path, suffix: str) -> None:
    """A GPS track that parses (GPX, NMEA or CSV by its original suffix).

    Raises:
        UploadError: 422 naming the line or point that is wrong.
    """
    try:
        read_track(path, suffix=suffix)
    except TrackError as exc:
        raise UploadError(str(exc).replace(str(path), "track"), 422) from None


@dataclass
class Services:
    """What a worker needs from its app."""

    sessions: sessionmaker[Session]
    store: Store
    evidence: Path
    registry: Registry
    metrics: Metrics | None = None
    case_conf: float = 0.4
    sample_rate: float = 0.0
    events: JobEvents = field(default_factory=JobEvents)
    clip_seconds: float = 0.0
    model_kind: str = "onnx"  # which artefact of the promoted model runs (onnx or int8)
    model_imgsz: int | None = None  # the input size it runs at (default: its card's)
    # For what a job writes as it runs, which a restart redoes (``db.unsynced_engine``);
    # by default the synced ``sessions``. Camera streams never use it: their frames are gone.
    job_sessions: sessionmaker[Session] | None = None

    @property
    def job_writes(self) -> sessionmaker[Session]:
        return self.job_sessions or self.sessions


@dataclass
class Claimed:
    """A job the worker has marked running, with what it needs to run it."""

    job_id: str
    params: dict[str, Any]
    uploads: list[Upload]
    source: Source


class Doorbell:
    """Tells sleeping job threads that work was queued, without losing a ring.

    A shared ``threading.Event`` that each thread clears after waking loses rings: thread A
    wakes for job 1, job 2 rings, A clears the event and takes job 1, and thread B sleeps on
    until its poll while job 2 waits. Here a thread takes a ticket before it looks for
    work, and waits only if nothing has rung since that ticket."""

    def __init__(self) -> None:
        self._rings = 0
        self._changed = threading.Condition()

    def ticket(self) -> int:
        with self._changed:
            return self._rings

    def ring(self) -> None:
        with self._changed:
            self._rings += 1
            self._changed.notify_all()

    def wait(self, ticket: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s unless a ring came after ``ticket``; true if one did."""
        with self._changed:
            return self._changed.wait_for(lambda: self._rings != ticket, timeout)


class Worker:
    """Runs queued jobs in ``threads`` background threads, one job each at a time, each
    thread with a detector of its own on its share of the cores. On CPU, two one-thread
    sessions side by side detect about 1.6 times the frames of one two-thread session (its
    second thread adds 10-20%), and one job's decoding and writing overlap another's
    detection."""

    def __init__(self, services: Services, poll_s: float = 0.2, threads: int = 1) -> None:
        self.services = services
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = Doorbell()
        self._claiming = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(slot,), name=f"jobs-{slot}",
                                          daemon=True) for slot in range(threads)]
        self._detectors: list[tuple[str, Detector] | None] = [None] * threads
        # a registered version's files never change: one that would not load is not opened
        # again at every poll (an onnxruntime session each time), only once re-promoted
        self._unloadable: list[tuple[str, str] | None] = [None] * threads
        self._cores = max(1, (os.cpu_count() or 1) // threads)  # each detector's share

    def model_problem(self, ref: str) -> str | None:
        """Why the job threads could not load model ``ref`` (the artefact and input size
        they run), e.g. a model whose fixed input shape ``model_imgsz`` does not fit; None
        when they could, or have not tried it yet."""
        for failed in self._unloadable:
            if failed is not None and failed[0] == ref:
                return failed[1]
        return None

    def start(self) -> None:
        with self.services.sessions() as session:
            resumed = session.execute(update(Job).where(Job.status == "running")
                                      .values(status="queued")).rowcount  # type: ignore[attr-defined]
            session.commit()
        if resumed:
            log.info("resuming %d job(s) interrupted by a restart", resumed)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.ring()
        for thread in self._threads:
            thread.join(timeout=30)

    def notify(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.ring()

    def _loop(self, slot: int) -> None:
        while not self._stop.is_set():
            try:
                detector: tuple[str, Detector] | Exception = self.detector(slot)
            except Exception as exc:  # no model: the jobs fail with the reason
                detector = exc
            ticket = self._wake.ticket()  # before looking, so a ring while looking counts
            claimed = self._claim(None if isinstance(detector, Exception) else detector[0])
            if claimed is None:
                self._wake.wait(ticket, self.poll_s)
                continue
            try:
                if isinstance(detector, Exception):
                    raise detector
                self._process(claimed, detector[1])
            except Exception as exc:  # a bad job must not stop the worker
                log.exception("job %s failed", claimed.job_id,
                              extra={"job_id": claimed.job_id, "status": "failed"})
                self._finish(claimed.job_id, "failed", str(exc))

    def _claim(self, model: str | None) -> Claimed | None:
        """The oldest queued job, marked running on ``model`` (one transaction). The update
        is conditional on the job still being queued, so two processes sharing a database
        never both take one; the threads of this one take turns."""
        with self._claiming, self.services.job_writes() as session:
            try:
                job = session.scalar(select(Job).where(Job.status == "queued")
                                     .order_by(Job.created_at).limit(1))
                if job is None:
                    return None
                taken = session.execute(
                    update(Job).where(Job.id == job.id, Job.status == "queued")
                    .values(status="running", started_at=utcnow(), model=model)
                    .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
                if not taken:  # another process took it first
                    session.rollback()
                    return None
                uploads = list(session.scalars(select(Upload).where(Upload.job_id == job.id)
                                               .order_by(Upload.id)))
                session.commit()
            except OperationalError as exc:  # e.g. SQLite busy: another process writes
                log.warning("could not claim a job now: %s", exc)
                return None
            return Claimed(job.id, dict(job.params), uploads,
                           Source(kind=job.source_kind, id=job.source_id))  # type: ignore[arg-type]

    def _finish(self, job_id: str, status: str, error: str | None = None) -> None:
        with self.services.sessions() as session:
            finish(session, job_id, status, error)
            session.commit()
        self.services.events.ended(job_id)

    def detector(self, slot: int = 0) -> tuple[str, Detector]:
        """The promoted model of job thread ``slot`` (its ``model_kind`` artefact), loaded
        once per promotion (camera streams share slot 0's: a session runs calls from several
        threads)."""
        registry = self.services.registry
        ref = registry.promoted()
        if ref is None:
            raise RuntimeError(f"no model promoted in {registry.root}")
        loaded = self._detectors[slot]
        if loaded is None or loaded[0] != ref:
            unloadable = self._unloadable[slot]
            if unloadable is not None and unloadable[0] == ref:
                raise ModelError(unloadable[1])
            card = registry.card(ref)
            path = registry.artefact_path(card, self.services.model_kind)
            # the detector must not drop what the case threshold would keep; its threads
            # do not spin, since uploads, requests and the other jobs share the cores
            config = DetectorConfig(conf=min(DetectorConfig().conf, self.services.case_conf),
                                    threads=self._cores, spin=False)
            try:
                detector = Detector.open(path, card, config, imgsz=self.services.model_imgsz)
            except ModelError as exc:
                self._unloadable[slot] = (ref, str(exc))
                raise
            loaded = self._detectors[slot] = (ref, detector)
            log.info("job thread %d runs %s (%s at %d px, %s)", slot, ref,
                     self.services.model_kind, detector.info.imgsz, path)
        return loaded

    def _process(self, claimed: Claimed, detector: Detector) -> None:
        started = time.monotonic()
        job_id, params, source, uploads = (claimed.job_id, claimed.params, claimed.source,
                                           claimed.uploads)
        info = detector.info
        builder = CaseBuilder(EvidenceStore(self.services.evidence),
                              ModelRef(name=info.name, version=info.version, sha256=info.sha256),
                              source, run=job_id, annotate=False)
        video = next((u for u in uploads if u.role == "video"), None)
        if video is None:
            frames: Iterable[Frame] = self._photo_frames(uploads, params, source.id)
            total, fps, photos = len(uploads), 1.0, True
        else:
            source_video = self._video(video, uploads, params, source.id)
            frames, fps, photos = source_video, float(params.get("fps", DEFAULT_FPS_MOVING)), False
            total = int(source_video.info.seconds * fps) + 1
        if not photos and self.services.clip_seconds > 0:
            builder.clips = ClipRecorder(self.services.clip_seconds, fps=fps)
        rules = RuleEngine(None, default_confidence=self.services.case_conf,
                           confirm_frames=1 if photos else MOVING_CONFIRM_FRAMES)
        sampler = FrameSampler(builder, job_id, self.services.sample_rate, rules.needed)
        total, done = max(1, total), [0]
        metrics = self.services.metrics

        def progress(count: int) -> None:
            done[0] += count
            if metrics is not None:
                metrics.frames.inc(count)
            if done[0] % 10 == 0 and done[0] < total:  # the end is told by the job's status
                with self.services.job_writes() as session:
                    session.execute(update(Job).where(Job.id == job_id)
                                    .values(progress=round(min(1.0, done[0] / total), 3)))
                    session.commit()

        lens = Lens(hfov_deg=float(params.get("hfov", Lens.hfov_deg)),
                    yaw_deg=float(params.get("camera_yaw", Lens.yaw_deg)))
        run(frames, detector, rules, builder, fps=fps, single_frame=photos, progress=progress,
            on_inference=metrics.inference_seconds.observe if metrics else lambda s: None,
            on_frame=sampler, lens=lens)
        store_cases(self.services.job_writes, job_id, builder.candidates, samples=sampler.take(),
                    done=True)
        self.services.events.ended(job_id)
        seconds = time.monotonic() - started
        log.info("job %s done: %d frame(s), %d candidate(s), %.1f s", job_id, done[0],
                 len(builder.candidates), seconds, extra={
                     "job_id": job_id, "status": "done", "kind": "photos" if photos else "video",
                     "frames": done[0], "candidates": len(builder.candidates),
                     "seconds": round(seconds, 3), "model": f"{info.name}:{info.version}"})

    def _video(self, video: Upload, uploads: list[Upload], params: dict[str, Any],
               source_id: str) -> VideoSource:
        track_upload = next((u for u in uploads if u.role == "track"), None)
        track = None
        if track_upload is not None:
            track = read_track(self.services.store.path(track_upload.sha256),
                               suffix=track_upload.meta.get("suffix"))
        start = datetime.fromisoformat(params["start"]) if params.get("start") else None
        return VideoSource(self.services.store.path(video.sha256),
                           fps=params.get("fps", DEFAULT_FPS_MOVING),
                           start=start, track=track, offset_s=float(params.get("gps_offset", 0)),
                           source_id=source_id)

    def _photo_frames(self, uploads: list[Upload], params: dict[str, Any],
                      source_id: str) -> Iterator[Frame]:
        zone = ZoneInfo(params.get("timezone", "Asia/Shanghai"))
        given = (Location(float(params["lat"]), float(params["lon"]))
                 if params.get("lat") is not None and params.get("lon") is not None else None)
        for index, upload in enumerate(uploads):
            path = self.services.store.path(upload.sha256)
            frame = read_photo(path, zone).frame(source_id, index, path)
            if "taken_at" in params:
                frame = replace(frame, captured_at=datetime.fromisoformat(
                    params["taken_at"]).astimezone(UTC))
            yield replace(frame, location=frame.location or given)


class FrameSampler:
    """Keeps a share of the frames that could not produce a candidate (no case class at
    the confidence the rules need), for reviewers to look for what the model missed. The
    choice is a hash of the job (or source) and frame index, so a job re-run after a crash
    samples the same frames. Rows record the builder's model, which follows a hot reload."""

    def __init__(self, builder: CaseBuilder, job_id: str | None, rate: float,
                 needed: Callable[[str], float]) -> None:
        self.builder, self.job_id, self.rate, self.needed = builder, job_id, rate, needed
        self._key = job_id or f"{builder.source.kind}:{builder.source.id}"
        self.rows: list[FrameRow] = []

    def __call__(self, frame: Frame, detections: Detections) -> None:
        if self.rate <= 0 or self._draw(frame.index) >= self.rate:
            return
        if any(int(c) in CASE_CLASS_IDS
               and float(p) >= self.needed(TAXONOMY.by_id(int(c)).key)
               for c, p in zip(detections.class_id, detections.confidence, strict=True)):
            return
        stored = self.builder.evidence.put_frame(frame)
        h, w = frame.image.shape[:2]
        source = self.builder.source
        self.rows.append(FrameRow(
            sha256=stored.sha256, kind="sample", job_id=self.job_id, source_kind=source.kind,
            source_id=source.id, captured_at=frame.captured_at, width=w, height=h,
            model=self.builder.model.model_dump()))

    def take(self) -> list[FrameRow]:
        """The rows kept since the last take."""
        rows, self.rows = self.rows, []
        return rows

    def _draw(self, index: int) -> float:
        digest = hashlib.sha256(f"{self._key}:{index}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def finish(session: Session, job_id: str, status: str, error: str | None = None) -> None:
    """Mark a job ended (in the caller's transaction): one UPDATE, the row is not loaded."""
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow()}
    if status == "done":
        values["progress"] = 1.0
    session.execute(update(Job).where(Job.id == job_id).values(**values)
                    .execution_options(synchronize_session=False))


def store_cases(sessions: sessionmaker[Session], job_id: str | None,
                candidates: list[CaseCandidate], *, update: bool = False,
                samples: Iterable[FrameRow] = (), done: bool = False) -> None:
    """Store new candidates as cases (skipping ids already stored: a rerun adds nothing),
    each with a row for its evidence frame, and the sampled frames, in one transaction;
    with ``update``, extend stored cases (a later sighting merged into them); with
    ``done``, mark the job done in that same transaction: a job is done exactly when its
    cases are stored. A candidate that is an open stored case's problem again (another
    upload, another vehicle, the same camera after a restart) joins that case instead
    (:func:`open_case`). Beside those look-ups, it is a few statements for any number of
    cases: one look-up of the stored ids per table and one bulk INSERT per table (new rows
    are written, not tracked: nothing reads them back here; a bulk INSERT cost a fifth
    less CPU than ORM objects and a flush)."""
    samples = list(samples)
    with sessions() as session:
        ids = [c.id for c in candidates]
        if update:  # the rows, to extend them below
            stored = {case.id: case for case in _rows_in(session, Case, Case.id, ids)}
            known_ids = set(stored)
        else:
            stored, known_ids = {}, set(_column_in(session, Case.id, ids))
        new: dict[str, CaseCandidate] = {}
        for candidate in candidates:
            if candidate.id in known_ids or candidate.id in new:  # the first of an id stays
                continue
            if (case := open_case(session, candidate)) is not None:
                merge_into(session, case, candidate, job_id)
            else:
                new[candidate.id] = candidate
        if update:
            for candidate in candidates:
                if (case := stored.get(candidate.id)) is not None:
                    case.last_seen = max(case.last_seen, candidate.last_seen)
                    case.places = [p.model_dump() for p in candidate.places]
        if new:
            session.execute(insert(Case), [case_values(c, job_id) for c in new.values()])
            session.execute(insert(AuditEntry), [
                {"case_id": c.id, "who": "streetwatch", "to_status": "pending_review",
                 "why": c.rule} for c in new.values()])
        frames: dict[str, dict[str, Any]] = {}
        for candidate in new.values():
            frame = candidate.frame
            if frame is not None and frame.sha256 not in frames:
                width, height = candidate.frame_size
                frames[frame.sha256] = {
                    "sha256": frame.sha256, "kind": "case", "job_id": job_id,
                    "source_kind": candidate.source.kind, "source_id": candidate.source.id,
                    "captured_at": candidate.first_seen, "width": width, "height": height,
                    "model": candidate.model.model_dump()}
        for sample in samples:  # a case's frame stays one
            frames.setdefault(sample.sha256, dict(inspect(sample).dict))
        known_frames = set(_column_in(session, FrameRow.sha256, list(frames)))
        if fresh := [row for sha, row in frames.items() if sha not in known_frames]:
            session.execute(insert(FrameRow), fresh)
        if done and job_id is not None:
            finish(session, job_id, "done")
        session.commit()


# Stored cases a new sighting may join: not yet reviewed, or confirmed and on its way to
# dispatch or dispatched (the city knows; a second case would send it twice). A rejected
# or closed case does not: the problem seen again is a new case.
OPEN_STATUSES = ("pending_review", "confirmed", "dispatch_queued", "dispatched")
SEEN_AGAIN = "the same problem seen again"  # the audit reason of a sighting that joined a case
# Stored cases are looked up by their first place within this distance of the sighting: a
# case's places (a row of posters) spread along a street rarely further than this.
NEARBY_M = 1000.0


def open_case(session: Session, candidate: CaseCandidate) -> Case | None:
    """The oldest open stored case (``OPEN_STATUSES``) of the candidate's category that it
    is the same problem as (``inference.cases.same_problem``), seen within
    ``MERGE_WINDOW_S`` of it; from a fixed camera, only that camera's."""
    window = timedelta(seconds=MERGE_WINDOW_S)
    query = (select(Case).where(Case.category == candidate.category,
                                Case.status.in_(OPEN_STATUSES),
                                Case.last_seen >= candidate.first_seen - window,
                                Case.first_seen <= candidate.last_seen + window)
             .order_by(Case.first_seen))
    fixed_view = candidate.source.kind == "camera"
    if fixed_view:
        query = query.where(Case.source_kind == "camera",
                            Case.source_id == candidate.source.id)
    elif candidate.places:
        place = candidate.places[0]
        dlat = NEARBY_M / 111_320
        dlon = dlat / max(0.01, math.cos(math.radians(place.lat)))
        query = query.where(Case.lat.between(place.lat - dlat, place.lat + dlat),
                            Case.lon.between(place.lon - dlon, place.lon + dlon))
    else:
        return None  # shots without a place never merge
    sightings: list[Place | None] = list(candidate.places) or [None]
    for case in session.scalars(query):
        places = [Place(**p) for p in case.places] or (
            [Place(lat=case.lat, lon=case.lon)] if case.lat is not None and case.lon is not None
            else [])
        if any(same_problem(fixed_view=fixed_view, box=candidate.box, place=place,
                            case_box=case.box, case_places=places)
               for place in sightings):
            return case
    return None


def merge_into(session: Session, case: Case, candidate: CaseCandidate,
               job_id: str | None) -> None:
    """Extend a stored case by a candidate that is its problem again, with an audit entry
    naming the candidate (its own evidence stays on disk, unreferenced), and note the case
    on the candidate's job."""
    case.first_seen = min(case.first_seen, candidate.first_seen)
    case.last_seen = max(case.last_seen, candidate.last_seen)
    known = list(case.places)
    case.places = known + [p for p in (q.model_dump() for q in candidate.places)
                           if p not in known]
    frame = candidate.frame
    session.add(AuditEntry(
        case_id=case.id, who="streetwatch", from_status=case.status, to_status=case.status,
        why=SEEN_AGAIN, details={
            "merged": candidate.id, "job": job_id, "source": candidate.source.model_dump(),
            "first_seen": candidate.first_seen.isoformat(),
            "last_seen": candidate.last_seen.isoformat(),
            "frame": frame.sha256 if frame else None,
            "confidence": candidate.confidence}))
    if job_id is not None and (job := session.get(Job, job_id)) is not None \
            and case.id not in job.joined:
        job.joined = [*job.joined, case.id]
    log.info("candidate %s joins stored case %s", candidate.id, case.id)


_IN_CHUNK = 500  # values per IN (...): far below any database's limit on parameters
Row = TypeVar("Row", bound=Base)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    """``values`` in pieces of at most ``_IN_CHUNK``, one ``IN (...)`` each."""
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


def _rows_in(session: Session, table: type[Row], column: Any, values: list[str]) -> list[Row]:
    """The rows of ``table`` whose ``column`` is among ``values``."""
    return [row for chunk in _chunks(values)
            for row in session.scalars(select(table).where(column.in_(chunk)))]


def _column_in(session: Session, column: Any, values: list[str]) -> list[str]:
    """The values of ``column`` (of one table) that are among ``values``: which are stored."""
    return [found for chunk in _chunks(values)
            for found in session.scalars(select(column).where(column.in_(chunk)))]


def case_values(candidate: CaseCandidate, job_id: str | None) -> dict[str, Any]:
    """The database row of a candidate, as column values."""
    location = candidate.location
    return {
        "id": candidate.id, "job_id": job_id, "dedup_key": candidate.dedup_key,
        "category": candidate.category, "dispatch_code": candidate.dispatch_code,
        "source_kind": candidate.source.kind, "source_id": candidate.source.id,
        "first_seen": candidate.first_seen, "last_seen": candidate.last_seen,
        "lat": location.lat if location else None, "lon": location.lon if location else None,
        "grid_cell": candidate.grid_cell, "box": list(candidate.box),
        "places": [p.model_dump() for p in candidate.places],
        "confidence": candidate.confidence, "detected": candidate.detected,
        "frame": candidate.frame.sha256 if candidate.frame else None,
        "evidence": [e.model_dump() for e in candidate.evidence],
        "model": candidate.model.model_dump(), "rule": candidate.rule}
