"""Box arithmetic shared by tracking, case merging and evaluation: ``xyxy`` in pixels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

BoxLike = Sequence[float] | npt.NDArray[Any]


def box_iou(a: BoxLike, b: BoxLike) -> float:
    """IoU of two ``xyxy`` boxes (0 when both are empty)."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def pairwise_intersection(a: npt.NDArray[np.floating[Any]],
                          b: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Intersection area of every box in ``a`` (M, 4) with every box in ``b`` (N, 4)."""
    a = a.astype(np.float64)[:, None]
    b = b.astype(np.float64)[None]
    w = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    h = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    return np.asarray(w * h, np.float64)


def pairwise_iou(a: npt.NDArray[np.floating[Any]],
                 b: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4): (M, N)."""
    inter = pairwise_intersection(a, b)
    a, b = a.astype(np.float64)[:, None], b.astype(np.float64)[None]
    area = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
            + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))
    return np.asarray(inter / np.maximum(area - inter, 1e-12), np.float64)


def contained(xyxy: npt.NDArray[np.floating[Any]], confidence: npt.NDArray[np.floating[Any]],
              threshold: float) -> npt.NDArray[np.bool_]:
    """Which boxes lie mostly inside a more confident one: at least ``threshold`` of a
    box's own area inside a kept box of higher confidence (intersection over the smaller
    box, SAHI's "IOS"). Greedy by confidence, as NMS: a dropped box drops nothing."""
    boxes = xyxy.astype(np.float64)
    area = ((boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0))
    inside = pairwise_intersection(boxes, boxes)  # [i, j]: box i's area inside box j
    dropped = np.zeros(len(boxes), bool)
    kept: list[int] = []
    for i in np.argsort(-confidence, kind="stable"):
        if kept and inside[i, kept].max() >= threshold * max(float(area[i]), 1e-12):
            dropped[i] = True
        else:
            kept.append(int(i))
    return dropped


def greedy_claims(boxes: npt.NDArray[Any], scores: npt.NDArray[Any], classes: npt.NDArray[Any],
                  truth: npt.NDArray[Any], truth_cls: npt.NDArray[Any],
                  iou: float) -> list[tuple[int, int | None]]:
    """Each predicted box, most confident first, with the true box it claims: of the
    unclaimed true boxes of its class, the one it overlaps most if at IoU >= ``iou``, else
    None (an evaluation's matching at one operating point)."""
    used: set[int] = set()
    claims: list[tuple[int, int | None]] = []
    for i in np.argsort(-scores):
        same = [j for j in range(len(truth)) if truth_cls[j] == classes[i] and j not in used]
        ious = [box_iou(boxes[i], truth[j]) for j in same]
        found = same[int(np.argmax(ious))] if ious and max(ious) >= iou else None
        if found is not None:
            used.add(found)
        claims.append((int(i), found))
    return claims
