"""Feedback datasets: what reviewers decided about evidence frames, as a streetwatch dataset.

The service collects the decisions (``service.feedback``); this module only writes them. A
frame becomes one image whose labels are the boxes reviewers confirmed, corrected or added.
The boxes they rejected as false alarms are not labels: they are background, listed in the
manifest row (``meta["rejected"]``) so an evaluation can count how many of them a model
raises again. A frame whose every candidate was rejected is a hard negative.

Splits are by group, one group per camera (or vehicle) and local day, so frames of one scene
never sit on both sides; a group's split is a hash of its name, so it stays the same in
every later export and a frame once held out is never trained on after.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from streetwatch.datasets.format import Dataset, DatasetError, DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY

FEEDBACK_JSON = "feedback.json"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Label:
    """A box that is a label: ``decision`` is confirmed, corrected or added (a miss)."""

    category: str
    box: Box
    decision: Literal["confirmed", "corrected", "added"]
    who: str
    case_id: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A box a reviewer rejected as a false alarm (false_positive or not_a_violation)."""

    category: str
    box: Box
    reason: str
    who: str
    case_id: str


@dataclass
class FeedbackFrame:
    """One evidence frame and every decision on it."""

    image: Path
    sha256: str
    width: int
    height: int
    source: str  # camera:ID, vehicle:ID or upload:ID
    day: str  # the local date it was captured, YYYY-MM-DD
    captured_at: datetime
    models: list[str]
    labels: list[Label] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    sampled: bool = False  # a frame with no candidate that a reviewer looked over

    @property
    def kind(self) -> str:
        if self.labels:
            return "labelled"
        return "hard_negative" if self.rejected else "reviewed_sample"

    @property
    def group(self) -> str:
        return f"{self.source}:{self.day}"


def group_split(group: str, val: float, test: float) -> str:
    """A group's split: a stable hash of its name against the fractions."""
    draw = int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "big") / 2**64
    if draw < test:
        return "test"
    return "val" if draw < test + val else "train"


def write_feedback(frames: Iterable[FeedbackFrame], out: Path, *, val: float = 0.1,
                   test: float = 0.2, overwrite: bool = False,
                   report: dict[str, Any] | None = None) -> Dataset:
    """Write the frames as a dataset at ``out`` (whole or not at all); ``report`` (what was
    held back and why, the period) is stored beside it in ``feedback.json``.

    Raises:
        DatasetError: bad fractions, an unknown class, a box outside its frame, a missing
            image, or an existing ``out`` without ``overwrite``.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(f"val {val} and test {test} must be in 0..1 and sum below 1")
    counts: Counter[str] = Counter()
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for frame in frames:
            try:
                data = frame.image.read_bytes()
            except OSError as exc:
                raise DatasetError(f"frame {frame.sha256}: cannot read {frame.image} "
                                   f"({exc.strerror})") from None
            split = group_split(frame.group, val, test)
            writer.add(data, name=f"{frame.sha256[:20]}.jpg", split=split,
                       labels=_labels(frame), source=f"review:{frame.source}",
                       group=frame.group, meta=_meta(frame))
            counts[f"{frame.kind}/{split}"] += 1
        writer.write_extra(FEEDBACK_JSON, json.dumps(
            {**(report or {}), "images": dict(sorted(counts.items()))},
            indent=2, ensure_ascii=False, default=str) + "\n")
    return Dataset.open(out)


def _labels(frame: FeedbackFrame) -> Labels:
    if not frame.labels:
        return Labels.from_arrays(np.zeros(0), np.zeros((0, 4)))
    ids, boxes = [], []
    for label in frame.labels:
        if label.category not in TAXONOMY.keys:
            raise DatasetError(f"frame {frame.sha256}: unknown class {label.category!r}")
        x1, y1, x2, y2 = label.box
        # Boxes may overhang the frame a little (a detector's box, a hasty drag): clip them;
        # one that leaves nothing inside is an error, never a silent loss.
        x1, x2 = max(0.0, x1), min(float(frame.width), x2)
        y1, y2 = max(0.0, y1), min(float(frame.height), y2)
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(f"frame {frame.sha256}: box {list(label.box)} of "
                               f"{label.case_id or 'an added box'} is outside the "
                               f"{frame.width}x{frame.height} image")
        ids.append(TAXONOMY.by_key(label.category).id)
        boxes.append((x1, y1, x2, y2))
    return Labels.from_xyxy_pixels(ids, boxes, frame.width, frame.height)


def _meta(frame: FeedbackFrame) -> dict[str, str]:
    decisions: dict[str, str] = {label.case_id: label.decision for label in frame.labels
                                 if label.case_id}
    decisions |= {r.case_id: f"rejected:{r.reason}" for r in frame.rejected}
    reviewers = sorted({label.who for label in frame.labels} | {r.who for r in frame.rejected})
    return {
        "feedback": frame.kind,
        "source": frame.source,
        "captured_at": frame.captured_at.isoformat(),
        "cases": ",".join(sorted(decisions)),
        "decisions": json.dumps(decisions, sort_keys=True),
        "added": str(sum(label.decision == "added" for label in frame.labels)),
        "reviewers": ",".join(reviewers),
        "models": ",".join(frame.models),
        "rejected": json.dumps([[r.category, *(round(v, 1) for v in r.box)]
                                for r in frame.rejected]),
    }
