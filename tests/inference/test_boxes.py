"""The one IoU every layer uses: scalar and pairwise agree, for tuples and arrays."""

from __future__ import annotations

import numpy as np
import pytest

from streetwatch.inference.boxes import box_iou, pairwise_iou


def test_scalar_iou() -> None:
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0  # empty boxes
    assert box_iou(np.array([0, 0, 10, 10], np.float32), (0, 0, 10, 10)) == 1.0


def test_pairwise_matches_scalar() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (7, 2))
    a = np.hstack([corners, corners + rng.uniform(1, 40, (7, 2))])
    b = a[::-1] + rng.uniform(-0.4, 0.4, a.shape)  # widths stay positive
    table = pairwise_iou(a, b)
    for i in range(len(a)):
        for j in range(len(b)):
            assert table[i, j] == pytest.approx(box_iou(a[i], b[j]))
