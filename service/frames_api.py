"""Active learning and feedback: the frames reviewers look at for misses, the boxes they add,
the model in service, and the export of review decisions as a dataset.

- ``GET /v1/review/samples``: a random handful of sampled frames where the model found
  nothing, not yet looked over (to find what it misses);
- ``GET /v1/frames/{sha256}``: a frame with its cases and the boxes reviewers added;
- ``POST /v1/frames/{sha256}/review``: add the boxes the model missed (none: nothing was
  missed) and mark the frame looked over;
- ``GET /v1/feedback.zip`` (admin): the feedback dataset of the decisions since a date.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from streetwatch.datasets.feedback import write_feedback
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.auth import Caller, require
from streetwatch.service.db import Case, FrameRow, utcnow
from streetwatch.service.feedback import collect
from streetwatch.service.state import State

frames = APIRouter()
OVERHANG_PX = 2.0  # a drawn or converted box may overhang the frame this much; it is clipped


class AddedBox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(description="a taxonomy class key, vehicle included")
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")


class FrameReview(BaseModel):
    """What a reviewer saw on a frame: the boxes the model missed (may be none)."""

    model_config = ConfigDict(extra="forbid")

    missed: list[AddedBox] = Field(default_factory=list, max_length=100)


@frames.get("/v1/review/samples")
def review_samples(state: State, _caller: Annotated[Caller, Depends(require("reviewer"))],
                   limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    """Sampled no-candidate frames nobody has looked over, in random order."""
    query = select(FrameRow).where(FrameRow.kind == "sample", FrameRow.reviewed_at.is_(None))
    with state.sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(func.random()).limit(limit))
        return {"total": total, "items": [_frame_json(row, []) for row in rows]}


@frames.get("/v1/frames/{sha256}")
def get_frame(sha256: str, state: State,
              _caller: Annotated[Caller, Depends(require("reviewer"))]) -> dict[str, Any]:
    """A frame, its cases, and the boxes reviewers added to it."""
    with state.sessions() as session:
        row = session.get(FrameRow, sha256)
        if row is None:
            raise HTTPException(404, f"no frame {sha256}")
        return _frame_json(row, _cases_on(session, sha256))


@frames.post("/v1/frames/{sha256}/review")
def review_frame(sha256: str, review: FrameReview, state: State,
                 caller: Annotated[Caller, Depends(require("reviewer"))]) -> dict[str, Any]:
    """Add the boxes the model missed on a frame (any number, none included) and mark it
    looked over. Boxes must lie within the frame."""
    with state.sessions() as session:
        row = session.get(FrameRow, sha256)
        if row is None:
            raise HTTPException(404, f"no frame {sha256}")
        added = []
        for n, item in enumerate(review.missed):
            if item.category not in TAXONOMY.keys:
                raise HTTPException(422, f"missed[{n}].category: {item.category!r} is not "
                                    f"one of {', '.join(TAXONOMY.keys)}")
            x1, y1, x2, y2 = item.box
            slack = OVERHANG_PX
            if not (-slack <= x1 < x2 <= row.width + slack
                    and -slack <= y1 < y2 <= row.height + slack):
                raise HTTPException(422, f"missed[{n}].box: {list(item.box)} must be x1 < x2, "
                                    f"y1 < y2 within the {row.width}x{row.height} frame")
            box = [max(0.0, x1), max(0.0, y1), min(float(row.width), x2),
                   min(float(row.height), y2)]
            added.append({"category": item.category, "box": box,
                          "who": caller.name, "at": utcnow().isoformat()})
        row.added = [*row.added, *added]
        row.reviewed_by, row.reviewed_at = caller.name, utcnow()
        session.commit()
        return _frame_json(row, _cases_on(session, sha256))


@frames.get("/v1/model")
def model_in_service(state: State,
                     _caller: Annotated[Caller, Depends(require("ingest", "reviewer"))],
                     ) -> dict[str, Any]:
    """The promoted model new jobs use (a promotion or rollback takes effect on the next
    job; running jobs finish on the model they started with), and which of its artefacts
    runs (``STREETWATCH_MODEL_KIND``) at which input size (``STREETWATCH_MODEL_IMGSZ``, else
    the card's)."""
    ref = state.registry.promoted()
    if ref is None:
        raise HTTPException(503, f"no model promoted in {state.registry.root}")
    card = state.registry.card(ref)
    kind = state.settings.model_kind
    artefact = card.artefacts.get(kind)
    return {"model": ref, "name": card.name, "version": card.version, "artefact": kind,
            "sha256": artefact.sha256 if artefact else None,
            "imgsz": state.settings.model_imgsz or card.imgsz,
            "parent": card.parent, "history": state.registry.history()[-10:]}


@frames.get("/v1/feedback.zip")
def feedback_export(
    state: State, _caller: Annotated[Caller, Depends(require("admin"))],
    since: Annotated[datetime | None, Query(description="decisions at or after (with zone)")]
    = None,
    val: Annotated[float, Query(ge=0, lt=1)] = 0.1,
    test: Annotated[float, Query(ge=0, lt=1)] = 0.2,
) -> FileResponse:
    """The feedback dataset of the review decisions since ``since``, zipped."""
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since: give a time zone (...Z or +08:00)")
    if val + test >= 1:
        raise HTTPException(422, f"val {val} + test {test} must be below 1")
    work = Path(tempfile.mkdtemp(prefix="sw-feedback-"))
    try:
        collected = collect(state.sessions, state.evidence, since=since)
        write_feedback(collected.frames, work / "feedback", val=val, test=test,
                       report=collected.report(since))
        archive = shutil.make_archive(str(work / "feedback"), "zip", work, "feedback")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(archive, media_type="application/zip", filename="feedback.zip",
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))


def _cases_on(session: Session, sha256: str) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.frame == sha256)))


def _frame_json(row: FrameRow, cases: list[Case]) -> dict[str, Any]:
    return {
        "sha256": row.sha256, "kind": row.kind, "job_id": row.job_id,
        "url": f"/v1/evidence/{row.sha256}.jpg",
        "source": {"kind": row.source_kind, "id": row.source_id},
        "captured_at": row.captured_at.isoformat(), "width": row.width, "height": row.height,
        "model": row.model, "added": row.added, "reviewed_by": row.reviewed_by,
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
        "cases": [{"id": c.id, "status": c.status, "category": c.category, "box": c.box,
                   "confidence": c.confidence} for c in cases],
    }
