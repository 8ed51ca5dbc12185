"""Review decisions as training data: which evidence frames a feedback export holds, with
which labels, and which frames it holds back and why (``datasets.feedback`` writes them).

A frame's labels are its cases that reviewers confirmed (with their corrections) and the
boxes reviewers added; its cases rejected as false_positive or not_a_violation are
background. Nothing unconfirmed becomes a label, so a frame is held back while any case on
it waits for review, and when a case on it was rejected as a duplicate or for poor evidence
(the object may be real, so its pixels are not background) unless a label covers it. A
frame sampled where the model found nothing enters once a reviewer looked it over.

A case's label class is the detector's class unless a reviewer changed the category: a
vehicle that a dwell rule turned into illegal_parking is, to the detector, a vehicle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.datasets.feedback import FeedbackFrame, Label, Rejected
from streetwatch.inference.boxes import box_iou
from streetwatch.service.db import AuditEntry, Case, FrameRow

POSITIVE = frozenset({"confirmed", "dispatch_queued", "dispatched", "closed"})
FALSE_ALARM = frozenset({"false_positive", "not_a_violation"})
COVERED_IOU = 0.5


@dataclass
class Collected:
    """Frames for the dataset, and the frames held back with the reason."""

    frames: list[FeedbackFrame] = field(default_factory=list)
    held_back: dict[str, str] = field(default_factory=dict)  # frame sha256 -> why

    def report(self, since: datetime | None) -> dict[str, Any]:
        return {"since": since.isoformat() if since else None,
                "frames": len(self.frames), "held_back": self.held_back}


def collect(sessions: sessionmaker[Session], evidence: Path, *, since: datetime | None = None,
            timezone: str = "Asia/Shanghai") -> Collected:
    """Every frame with a review decision at or after ``since`` (all when None)."""
    zone = ZoneInfo(timezone)
    result = Collected()
    with sessions() as session:
        for row in _touched_frames(session, since):
            cases = list(session.scalars(select(Case).where(Case.frame == row.sha256)
                                         .order_by(Case.first_seen, Case.id)))
            audits = _audits(session, [c.id for c in cases])
            frame = FeedbackFrame(
                image=evidence / f"{row.sha256}.jpg", sha256=row.sha256, width=row.width,
                height=row.height, source=f"{row.source_kind}:{row.source_id}",
                day=row.captured_at.astimezone(zone).date().isoformat(),
                captured_at=row.captured_at,
                models=sorted({_model_ref(m) for m in [row.model, *(c.model for c in cases)]
                               if m}),
                sampled=row.kind == "sample")
            why = _decide(frame, row, cases, audits)
            if why is None:
                result.frames.append(frame)
            else:
                result.held_back[row.sha256] = why
    return result


def _touched_frames(session: Session, since: datetime | None) -> Iterator[FrameRow]:
    """Frames with a case decided, or boxes added or a look-over, at or after ``since``."""
    decided = select(Case.frame).join(AuditEntry, AuditEntry.case_id == Case.id).where(
        AuditEntry.to_status.in_(("confirmed", "rejected")), Case.frame.is_not(None))
    reviewed = select(FrameRow.sha256).where(FrameRow.reviewed_at.is_not(None))
    if since is not None:  # compared as instants (db.UTCDateTime)
        decided = decided.where(AuditEntry.at >= since)
        reviewed = reviewed.where(FrameRow.reviewed_at >= since)
    query = select(FrameRow).where(or_(FrameRow.sha256.in_(decided),
                                       FrameRow.sha256.in_(reviewed)))
    yield from session.scalars(query.order_by(FrameRow.captured_at, FrameRow.sha256))


def _audits(session: Session, case_ids: list[str]) -> dict[str, list[AuditEntry]]:
    rows: dict[str, list[AuditEntry]] = defaultdict(list)
    if case_ids:
        for entry in session.scalars(select(AuditEntry).where(AuditEntry.case_id.in_(case_ids))
                                     .order_by(AuditEntry.id)):
            rows[entry.case_id].append(entry)
    return rows


def _decide(frame: FeedbackFrame, row: FrameRow, cases: list[Case],
            audits: dict[str, list[AuditEntry]]) -> str | None:
    """Fill the frame's labels and rejections; the reason to hold it back, if any."""
    if row.kind == "sample" and row.reviewed_at is None:
        return "a sampled frame nobody has looked over yet"
    unsure: list[Case] = []
    for case in cases:
        history = audits[case.id]
        if case.status in POSITIVE:
            corrected = [e.details for e in history if {"category", "box"} & set(e.details)]
            decider = _decider(history, "confirmed")
            recategorised = any("category" in d for d in corrected)
            frame.labels.append(Label(
                category=case.category if recategorised else (case.detected or case.category),
                box=_box(case.box), decision="corrected" if corrected else "confirmed",
                who=decider, case_id=case.id))
        elif case.status == "rejected" and case.reject_reason in FALSE_ALARM:
            decider = _decider(history, "rejected")
            frame.rejected.append(Rejected(category=case.category, box=_box(case.box),
                                           reason=case.reject_reason or "", who=decider,
                                           case_id=case.id))
        elif case.status == "rejected":
            unsure.append(case)
        else:
            return f"case {case.id} is {case.status}: waiting for a decision"
    for added in row.added:
        frame.labels.append(Label(category=added["category"], box=_box(added["box"]),
                                  decision="added", who=added["who"]))
    for case in unsure:
        if not any(box_iou(_box(case.box), label.box) >= COVERED_IOU for label in frame.labels):
            return (f"case {case.id} was rejected as {case.reject_reason}: what it shows is "
                    "not known, so its pixels cannot count as background")
    if not frame.labels and not frame.rejected and not frame.sampled:
        return "no decision on it says what it shows"
    return None


def _decider(history: list[AuditEntry], status: str) -> str:
    """Who last moved the case to ``status`` (unknown for a case without that audit row,
    e.g. one imported with its decision)."""
    return next((e.who for e in reversed(history) if e.to_status == status), "unknown")


def _box(values: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _model_ref(model: dict[str, Any]) -> str:
    return f"{model.get('name')}:{model.get('version')}"
