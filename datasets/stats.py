"""Dataset statistics: images and boxes per class and split, box sizes, empty images.

Box sizes follow COCO: small below 32x32 pixels of area, medium below 96x96, large above,
measured in the image's own pixels.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from streetwatch.datasets.format import SPLITS, Dataset

SMALL_AREA = 32**2
MEDIUM_AREA = 96**2
SIZE_BUCKETS = ("small", "medium", "large")


def size_bucket(area_px: float) -> str:
    """COCO's size class of a box area in pixels."""
    if area_px < SMALL_AREA:
        return "small"
    return "medium" if area_px < MEDIUM_AREA else "large"


@dataclass
class DatasetStats:
    """Counts over a dataset.

    Attributes:
        names: Class names in id order.
        images: Images per split.
        empty_images: Images without boxes, per split.
        boxes: ``boxes[split][class]`` box counts.
        images_with_class: ``images_with_class[split][class]`` images holding the class.
        sizes: ``sizes[class][bucket]`` box counts per COCO size bucket.
        areas: Per class, sqrt of box area in pixels (for the histogram).
        centres: Per class, (N, 2) normalised box centres.
    """

    names: list[str]
    images: Counter[str] = field(default_factory=Counter)
    empty_images: Counter[str] = field(default_factory=Counter)
    boxes: dict[str, Counter[str]] = field(default_factory=dict)
    images_with_class: dict[str, Counter[str]] = field(default_factory=dict)
    sizes: dict[str, Counter[str]] = field(default_factory=dict)
    areas: dict[str, list[float]] = field(default_factory=dict)
    centres: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def total_boxes(self, name: str) -> int:
        """Boxes of one class over all splits."""
        return sum(self.boxes[s][name] for s in SPLITS)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready counts (no per-box arrays)."""
        return {
            "images": {s: self.images[s] for s in SPLITS},
            "empty_images": {s: self.empty_images[s] for s in SPLITS},
            "boxes": {s: {n: self.boxes[s][n] for n in self.names} for s in SPLITS},
            "images_with_class": {
                s: {n: self.images_with_class[s][n] for n in self.names} for s in SPLITS
            },
            "sizes": {n: {b: self.sizes[n][b] for b in SIZE_BUCKETS} for n in self.names},
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def compute_stats(dataset: Dataset) -> DatasetStats:
    """Count images, boxes, sizes and empty images of a dataset."""
    stats = DatasetStats(names=list(dataset.names))
    stats.boxes = {s: Counter() for s in SPLITS}
    stats.images_with_class = {s: Counter() for s in SPLITS}
    stats.sizes = {n: Counter() for n in dataset.names}
    stats.areas = {n: [] for n in dataset.names}
    stats.centres = {n: [] for n in dataset.names}
    for record, labels in dataset.iter_labels():
        stats.images[record.split] += 1
        if not len(labels):
            stats.empty_images[record.split] += 1
            continue
        names = [dataset.names[c] for c in labels.class_id]
        stats.boxes[record.split].update(names)
        stats.images_with_class[record.split].update(set(names))
        areas = labels.xywhn[:, 2] * record.width * labels.xywhn[:, 3] * record.height
        for name, area, (cx, cy) in zip(names, areas, labels.xywhn[:, :2], strict=True):
            stats.sizes[name][size_bucket(float(area))] += 1
            stats.areas[name].append(float(np.sqrt(area)))
            stats.centres[name].append((float(cx), float(cy)))
    return stats


def format_stats(stats: DatasetStats) -> str:
    """A plain-text table for the terminal."""
    width = max(len(n) for n in [*stats.names, "images", "empty images"]) + 2
    header = f"{'':<{width}}" + "".join(f"{s:>8}" for s in SPLITS) + f"{'total':>8}"
    header += "".join(f"{b:>8}" for b in SIZE_BUCKETS)
    lines = ["boxes per class and split, and COCO size buckets (all splits):", header]
    for name in stats.names:
        row = f"{name:<{width}}" + "".join(f"{stats.boxes[s][name]:>8}" for s in SPLITS)
        row += f"{stats.total_boxes(name):>8}"
        row += "".join(f"{stats.sizes[name][b]:>8}" for b in SIZE_BUCKETS)
        lines.append(row)
    for label, counter in (("images", stats.images), ("empty images", stats.empty_images)):
        lines.append(f"{label:<{width}}" + "".join(f"{counter[s]:>8}" for s in SPLITS)
                     + f"{sum(counter.values()):>8}")
    missing = [n for n in stats.names if any(stats.images[s] and not stats.boxes[s][n]
                                             for s in SPLITS)]
    if missing:
        lines.append("classes absent from a non-empty split: " + ", ".join(
            f"{n} ({'/'.join(s for s in SPLITS if stats.images[s] and not stats.boxes[s][n])})"
            for n in missing))
    return "\n".join(lines)
