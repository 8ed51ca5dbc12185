"""The v1 API: uploads, jobs, cases and their evidence."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, func, select
from starlette.concurrency import run_in_threadpool

from streetwatch.inference.cases import EvidenceStore, box_evidence
from streetwatch.inference.geolocate import Lens
from streetwatch.inference.rules import DEFAULT_FPS_MOVING
from streetwatch.models.files import validation_message
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.auth import Caller, require
from streetwatch.service.db import AuditEntry, Case, Job, OutboxEntry, Upload
from streetwatch.service.dispatch import SIGNATURE_HEADER, verify
from streetwatch.service.dispatch import payload as dispatch_payload
from streetwatch.service.jobs import UploadError, check_photo, check_track, check_video
from streetwatch.service.state import AppState, State
from streetwatch.service.store import TooLarge

api = APIRouter()
log = logging.getLogger(__name__)
_EVIDENCE_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|webm)$")


_WAIT_HELP = ("seconds to wait for the job to end before answering (long polling): the "
              "answer comes as soon as it ends, or after this long with it still going")


@api.post("/v1/uploads/photos", status_code=202)
async def upload_photos(
    state: State,
    caller: Annotated[Caller, Depends(require("ingest"))],
    files: Annotated[list[UploadFile], File(description="one or more photos")],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    vehicle_id: Annotated[str | None, Form(max_length=200)] = None,
    wait: Annotated[float, Query(ge=0, le=60, description=_WAIT_HELP)] = 0,
) -> dict[str, Any]:
    """Photos to check. GPS comes from their EXIF, else from ``lat``/``lon``. Answered
    202 with a job id once the bytes and the job are stored; with ``wait``, once the job
    has ended too (or ``wait`` seconds passed), with the job as ``GET /v1/jobs/{id}``
    gives it: one request per photo instead of two."""
    job_id = str(uuid.uuid4())
    deadline = time.monotonic() + wait
    # watched before the job exists, so its end is heard however soon it comes, and the
    # job is read once it has ended rather than also once just after it was queued
    with state.job_events.watch(job_id) as ended:
        await run_in_threadpool(_store_photos, state, caller, files,
                                {"lat": lat, "lon": lon}, vehicle_id, job_id)
        if wait > 0:
            await _hear_end(state, ended, wait)
    answer: dict[str, Any] = {"job_id": job_id, "status": "queued", "photos": len(files)}
    if wait > 0:
        job = await _job_when_ended(state, job_id, deadline - time.monotonic())
        answer.update(status=job["status"], job=job)
    return answer


def _store_photos(state: AppState, caller: Caller, files: list[UploadFile],
                  where: dict[str, float | None], vehicle_id: str | None,
                  job_id: str) -> None:
    """Store the photos, each judged by its content, and their job ``job_id``."""
    _check_queue(state)
    stored: list[tuple[str, str, int, str, dict[str, Any]]] = []
    for number, upload in enumerate(files, start=1):
        name = upload.filename or f"photo {number}"
        try:
            sha, size = state.store.put(upload.file, state.settings.max_upload_bytes)
            check_photo(state.store.path(sha), state.settings.max_image_pixels)
        except TooLarge as exc:
            raise HTTPException(413, f"{name}: {exc}") from None
        except UploadError as exc:
            raise HTTPException(exc.status, f"{name}: {exc}") from None
        stored.append(("photo", sha, size, name, {}))
    _new_job(state, "photos", vehicle_id, {**where, "by": caller.name}, stored, job_id)


@api.post("/v1/uploads/videos", status_code=202)
def upload_video(
    state: State,
    caller: Annotated[Caller, Depends(require("ingest"))],
    video: Annotated[UploadFile, File(description="a dashcam or camera video")],
    track: Annotated[UploadFile | None, File(description="its GPS track: GPX, NMEA or CSV")]
    = None,
    vehicle_id: Annotated[str | None, Form(max_length=200)] = None,
    start: Annotated[datetime | None, Form(description="UTC time of the first frame")] = None,
    gps_offset: Annotated[float, Form(description="seconds from video to GPS time")] = 0.0,
    fps: Annotated[float, Form(gt=0, le=30)] = DEFAULT_FPS_MOVING,
    hfov: Annotated[float, Form(ge=10, le=170, description="the camera's horizontal field of "
                                "view, degrees: places what it sees")] = Lens.hfov_deg,
    camera_yaw: Annotated[float, Form(ge=-180, le=180, description="the camera's axis "
                                      "against the direction of travel, degrees clockwise")]
    = Lens.yaw_deg,
) -> dict[str, Any]:
    """A video, with the vehicle's GPS track for dashcam footage. Answered 202 with a job id
    once the bytes and the job are stored."""
    _check_queue(state)
    if start is not None and start.tzinfo is None:
        raise HTTPException(422, "start: give a time zone (e.g. 2026-05-12T08:00:00Z)")
    stored: list[tuple[str, str, int, str, dict[str, Any]]] = []
    name = video.filename or "video"
    try:
        sha, size = state.store.put(video.file, state.settings.max_upload_bytes)
        seconds = check_video(state.store.path(sha), state.settings.max_video_seconds)
        stored.append(("video", sha, size, name, {"seconds": seconds}))
        if track is not None:
            name = track.filename or "track"
            suffix = Path(name).suffix.lower()
            sha, size = state.store.put(track.file, state.settings.max_upload_bytes)
            check_track(state.store.path(sha), suffix)
            stored.append(("track", sha, size, name, {"suffix": suffix}))
    except TooLarge as exc:
        raise HTTPException(413, f"{name}: {exc}") from None
    except UploadError as exc:
        raise HTTPException(exc.status, f"{name}: {exc}") from None
    params = {"fps": fps, "gps_offset": gps_offset, "by": caller.name,
              "start": start.isoformat() if start else None, "hfov": hfov,
              "camera_yaw": camera_yaw}
    return {"job_id": _new_job(state, "video", vehicle_id, params, stored), "status": "queued"}


def _check_queue(state: State) -> None:
    with state.sessions() as session:
        queued = session.scalar(select(func.count()).where(Job.status == "queued")) or 0
    if queued >= state.settings.queue_limit:
        raise HTTPException(503, f"{queued} jobs are waiting; try again later",
                            headers={"Retry-After": "30"})


def _new_job(state: State, kind: str, vehicle_id: str | None, params: dict[str, Any],
             stored: list[tuple[str, str, int, str, dict[str, Any]]],
             job_id: str | None = None) -> str:
    """The job (``job_id``, else a new id) and its uploads, in one transaction; its id."""
    job_id = job_id or str(uuid.uuid4())
    with state.sessions() as session:
        session.add(Job(id=job_id, kind=kind, source_kind="vehicle" if vehicle_id else "upload",
                        source_id=vehicle_id or f"upload-{job_id[:8]}", params=params))
        session.flush()
        for role, sha, size, name, meta in stored:
            session.add(Upload(job_id=job_id, role=role, sha256=sha, filename=name, bytes=size,
                               meta=meta))
        session.commit()
    state.wake_worker()
    return job_id


@api.get("/v1/jobs/{job_id}")
async def get_job(
    job_id: str, state: State,
    _caller: Annotated[Caller, Depends(require("ingest", "reviewer"))],
    wait: Annotated[float, Query(ge=0, le=60, description=_WAIT_HELP)] = 0,
) -> dict[str, Any]:
    """A job's status and progress, and how many cases it produced. With ``wait``, the
    answer comes as soon as the job ends, or after ``wait`` seconds with it still going:
    one request instead of a polling loop."""
    return await _job_when_ended(state, job_id, wait)


async def _job_when_ended(state: AppState, job_id: str, wait: float) -> dict[str, Any]:
    """The job's status once it has ended, or after ``wait`` seconds with it going."""
    deadline = time.monotonic() + wait
    while True:
        with state.job_events.watch(job_id) as ended:
            job = await run_in_threadpool(_job_status, state, job_id)
            left = deadline - time.monotonic()
            if job["status"] not in _GOING or left <= 0:
                return job
            await _hear_end(state, ended, left)


async def _hear_end(state: AppState, ended: asyncio.Event, left: float) -> None:
    """Wait for a job's ``ended`` event (from ``job_events.watch``), at most ``left``
    seconds and at most ``job_recheck_s``: the job is looked at again now and then, since
    another process may run it and this one would not hear its end."""
    with suppress(TimeoutError):
        await asyncio.wait_for(ended.wait(), min(left, state.job_recheck_s))


_GOING = ("queued", "running")


def _job_status(state: AppState, job_id: str) -> dict[str, Any]:
    """The job as ``GET /v1/jobs/{id}`` answers it, in one statement."""
    produced = select(func.count()).where(Case.job_id == job_id).scalar_subquery()
    with state.sessions() as session:
        row = session.execute(select(Job, produced).where(Job.id == job_id)).first()
        if row is None:
            raise HTTPException(404, f"no job {job_id}")
        job, cases = row
        return {"id": job.id, "kind": job.kind, "status": job.status,
                "progress": job.progress, "error": job.error, "model": job.model,
                "cases": cases, "joined": list(job.joined),
                "created_at": job.created_at.isoformat()}


@dataclass
class CaseFilter:
    """Query parameters that narrow the case list (all optional, combined with AND)."""

    status: str | None = None
    category: str | None = None
    source_kind: Literal["camera", "vehicle", "upload"] | None = None
    source_id: str | None = None
    grid_cell: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in ((Case.status, self.status), (Case.category, self.category),
                              (Case.source_kind, self.source_kind),
                              (Case.source_id, self.source_id),
                              (Case.grid_cell, self.grid_cell)):
            if value is not None:
                query = query.where(column == value)
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise HTTPException(422, "since/until: give a time zone (...Z or +08:00)")
        if self.since is not None:  # compared as instants (db.UTCDateTime)
            query = query.where(Case.last_seen >= self.since)
        if self.until is not None:
            query = query.where(Case.first_seen < self.until)
        return query


@api.get("/v1/cases")
def list_cases(
    state: State,
    _caller: Annotated[Caller, Depends(require("reviewer"))],
    filters: Annotated[CaseFilter, Depends()],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    order: Annotated[Literal["newest", "uncertain"], Query(
        description="newest first, or the least sure first: confidence nearest the case "
                    "threshold (active learning)")] = "newest",
) -> dict[str, Any]:
    """Cases, filtered and paginated: newest first, or least sure first."""
    query = filters.apply(select(Case))
    first = (Case.first_seen.desc(),) if order == "newest" else \
        (func.abs(Case.confidence - state.settings.case_confidence), Case.first_seen.desc())
    with state.sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(*first, Case.id).limit(limit).offset(offset))
        return {"total": total, "items": [_case_json(c) for c in rows]}


EXPORT_COLUMNS = ("id", "status", "category", "dispatch_code", "source_kind", "source_id",
                  "first_seen", "last_seen", "lat", "lon", "grid_cell", "confidence", "rule",
                  "reject_reason", "evidence_sha256")


@api.get("/v1/cases.{fmt}")
def export_cases(
    fmt: Literal["csv", "jsonl"],
    state: State,
    _caller: Annotated[Caller, Depends(require("reviewer"))],
    filters: Annotated[CaseFilter, Depends()],
) -> StreamingResponse:
    """Every case the filters select, as CSV or JSON lines, streamed in pages."""
    query = filters.apply(select(Case)).order_by(Case.first_seen, Case.id)

    def rows() -> Iterator[str]:
        if fmt == "csv":
            yield _csv_line(EXPORT_COLUMNS)
        offset = 0
        while True:
            with state.sessions() as session:
                page = list(session.scalars(query.limit(500).offset(offset)))
                for case in page:
                    if fmt == "jsonl":
                        yield json.dumps(_case_json(case), ensure_ascii=False) + "\n"
                    else:
                        yield _csv_line([_export_value(case, c) for c in EXPORT_COLUMNS])
            if len(page) < 500:
                return
            offset += 500

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(rows(), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="cases.{fmt}"'})


def _export_value(case: Case, column: str) -> Any:
    if column == "evidence_sha256":
        return " ".join(e["sha256"] for e in case.evidence)
    value = getattr(case, column)
    return value.isoformat() if isinstance(value, datetime) else value


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


@api.get("/v1/cases/{case_id}")
def get_case(case_id: str, state: State,
             _caller: Annotated[Caller, Depends(require("reviewer"))]) -> dict[str, Any]:
    """One case with its evidence URLs."""
    with state.sessions() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise HTTPException(404, f"no case {case_id}")
        return _case_json(case)


@api.get("/v1/evidence/{name}")
def get_evidence(name: str, state: State,
                 _caller: Annotated[Caller, Depends(require("reviewer"))]) -> FileResponse:
    """An evidence image or clip, by its content hash (no other name reaches the disk)."""
    if not _EVIDENCE_NAME.match(name) or not (state.evidence / name).is_file():
        raise HTTPException(404, f"no evidence {name!r}")
    return FileResponse(state.evidence / name,
                        media_type="video/webm" if name.endswith(".webm") else "image/jpeg")


class Review(BaseModel):
    """A reviewer's decision on a pending case."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["confirm", "reject", "correct"]
    reason: Literal["false_positive", "duplicate", "not_a_violation", "poor_evidence"] | None \
        = None
    category: str | None = None
    box: tuple[float, float, float, float] | None = None
    note: str | None = Field(default=None, max_length=2000)


@api.post("/v1/cases/{case_id}/review")
def review_case(case_id: str, decision: Review, state: State,
                caller: Annotated[Caller, Depends(require("reviewer"))]) -> dict[str, Any]:
    """Confirm (queued for dispatch in the same transaction), reject with a reason, or
    correct the class or box of a pending case. Every change is an audit row."""
    with state.sessions() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise HTTPException(404, f"no case {case_id}")
        if case.status != "pending_review":
            raise HTTPException(409, f"case {case_id} is {case.status}, not pending_review")

        def audit(to: str, why: str | None, **details: Any) -> None:
            session.add(AuditEntry(case_id=case.id, who=caller.name, from_status=case.status,
                                   to_status=to, why=why, details=details))
            case.status = to

        if decision.action == "confirm":
            # drawn now, of the box and class as reviewed: what the city is sent
            _redraw(state, case, annotate=True)
            audit("confirmed", decision.note)
            audit("dispatch_queued", "outbox")
            session.add(OutboxEntry(case_id=case.id, payload=dispatch_payload(
                case, caller.name, state.settings.public_url)))
        elif decision.action == "reject":
            if decision.reason is None:
                raise HTTPException(422, "a rejection needs a reason: false_positive, "
                                    "duplicate, not_a_violation or poor_evidence")
            case.reject_reason = decision.reason
            audit("rejected", decision.note or decision.reason, reason=decision.reason)
        else:
            changes: dict[str, Any] = {}
            if decision.category is not None:
                if decision.category not in TAXONOMY.keys \
                        or not TAXONOMY.by_key(decision.category).can_be_case:
                    raise HTTPException(422, f"category {decision.category!r} is not a case "
                                        "class")
                changes["category"] = [case.category, decision.category]
                case.category = decision.category
                codes = TAXONOMY.by_key(decision.category).dispatch_codes
                case.dispatch_code = codes[0] if codes else None
            if decision.box is not None:
                x1, y1, x2, y2 = decision.box
                if not (x2 > x1 and y2 > y1):
                    raise HTTPException(422, "box must be [x1, y1, x2, y2] with x2 > x1, y2 > y1")
                changes["box"] = [case.box, list(decision.box)]
                case.box = list(decision.box)
                _redraw(state, case, annotate=False)  # the crop shows the new box
            if not changes:
                raise HTTPException(422, "a correction changes the category or the box")
            audit("pending_review", decision.note or "corrected", **changes)
        session.commit()
        return _case_json(case)


def _redraw(state: AppState, case: Case, *, annotate: bool) -> None:
    """Draw the case's box evidence again from its frame, for its box and class as they
    stand (``inference.cases.box_evidence``): the crop, and with ``annotate`` the whole
    frame with the box drawn. The new files replace those of the same kinds in its evidence
    list, first in it; the old files stay until retention finds them unnamed."""
    # the frame as stored: the picture its boxes are in (an upload turned by its EXIF
    # orientation was stored turned, without the tag)
    read = cv2.imread(str(state.evidence / f"{case.frame}.jpg"),
                      cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if case.frame else None
    if read is None:
        log.warning("case %s: no readable evidence frame %s; its evidence is not redrawn",
                    case.id, case.frame)
        return
    image = np.asarray(read, np.uint8)
    drawn = box_evidence(EvidenceStore(state.evidence), image, tuple(case.box), case.category,
                         case.confidence, annotate=annotate)
    kinds = {e.kind for e in drawn}
    case.evidence = [e.model_dump() for e in drawn] + [e for e in case.evidence
                                                        if e["kind"] not in kinds]


@api.get("/v1/cases/{case_id}/audit")
def case_audit(case_id: str, state: State,
               _caller: Annotated[Caller, Depends(require("reviewer"))]) -> list[dict[str, Any]]:
    """Every change of a case: who, when, from, to, why."""
    with state.sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.case_id == case_id)
                               .order_by(AuditEntry.id))
        return [{"at": r.at.isoformat(), "who": r.who, "from": r.from_status, "to": r.to_status,
                 "why": r.why, "details": r.details} for r in rows]


class Callback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str
    status: Literal["dispatched", "closed"]
    note: str | None = Field(default=None, max_length=2000)


@api.post("/v1/dispatch/callbacks")
async def dispatch_callback(request: Request, state: State) -> dict[str, str]:
    """The dispatch system reports a case's progress, signed like our requests to it."""
    secret = state.settings.dispatch_secret
    body = await request.body()
    if secret is None or not verify(secret.get_secret_value(), body,
                                    request.headers.get(SIGNATURE_HEADER)):
        raise HTTPException(401, f"missing or wrong {SIGNATURE_HEADER}")
    try:
        news = Callback.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, validation_message(exc)) from None
    with state.sessions() as session:
        case = session.get(Case, news.case_id)
        if case is None:
            raise HTTPException(404, f"no case {news.case_id}")
        allowed = {"dispatched": {"dispatch_queued", "dispatched"},
                   "closed": {"dispatch_queued", "dispatched", "closed"}}[news.status]
        if case.status not in allowed:
            raise HTTPException(409, f"case {case.id} is {case.status}; cannot become "
                                f"{news.status}")
        if case.status != news.status:
            session.add(AuditEntry(case_id=case.id, who="dispatch-system",
                                   from_status=case.status, to_status=news.status,
                                   why=news.note))
            case.status = news.status
        session.commit()
        return {"case_id": case.id, "status": case.status}


@api.get("/v1/whoami")
def whoami(
    caller: Annotated[Caller, Depends(require("ingest", "reviewer"))],
) -> dict[str, str]:
    """The calling key's name and role (any role may ask)."""
    return {"name": caller.name, "role": caller.role}


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "status": case.status, "category": case.category,
        "dispatch_code": case.dispatch_code,
        "source": {"kind": case.source_kind, "id": case.source_id},
        "first_seen": case.first_seen.isoformat(), "last_seen": case.last_seen.isoformat(),
        "location": None if case.lat is None else {"lat": case.lat, "lon": case.lon},
        "places": case.places,
        "grid_cell": case.grid_cell, "box": case.box, "confidence": case.confidence,
        "detected": case.detected, "frame": case.frame, "evidence": case.evidence_links(),
        "model": case.model, "rule": case.rule, "job_id": case.job_id,
    }
