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


def pairwise_iou(a: npt.NDArray[np.floating[Any]],
                 b: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4): (M, N)."""
    a = a.astype(np.float64)[:, None]
    b = b.astype(np.float64)[None]
    w = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    h = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = w * h
    area = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
            + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))
    return np.asarray(inter / np.maximum(area - inter, 1e-12), np.float64)
