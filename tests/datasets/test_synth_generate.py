"""Generated images: deterministic for a seed, with valid labels from both camera kinds."""

from __future__ import annotations

import numpy as np
import pytest

from streetwatch.datasets.synth.generate import generate_image
from streetwatch.models.taxonomy import TAXONOMY


@pytest.mark.parametrize("kind", ["dashcam", "cctv"])
def test_same_seed_same_image_and_labels(kind: str) -> None:
    first = generate_image(7, kind, (320, 180))
    again = generate_image(7, kind, (320, 180))
    other = generate_image(8, kind, (320, 180))
    assert np.array_equal(first.image, again.image)
    assert first.labels == again.labels
    assert not np.array_equal(first.image, other.image)


def test_labels_are_valid_boxes_of_known_classes() -> None:
    seen: set[str] = set()
    for seed in range(12):
        result = generate_image(seed, "dashcam" if seed % 2 else "cctv", (480, 270))
        assert result.image.shape == (270, 480, 3) and result.image.dtype == np.uint8
        for label in result.labels:
            x1, y1, x2, y2 = label.xyxy
            assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 270
            assert label.visible_fraction >= 0.3
            if label.class_key == "street_vending":
                assert label.object_kind in {"stall", "cart"}
            seen.add(label.class_key)
        yolo = result.yolo_labels()
        assert len(yolo) == len(result.labels)
        assert np.all((yolo.xywhn >= 0) & (yolo.xywhn <= 1))
    assert seen <= set(TAXONOMY.keys)
    assert "vehicle" in seen


def test_unknown_camera_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="camera kind 'drone'"):
        generate_image(0, "drone", (320, 180))
