"""Read LabelMe JSON files (one per image, ``shapes`` with ``label`` and ``points``).

Rectangles, polygons and circles become boxes (a polygon's extent, a circle's bounding
square). Points and lines cannot be boxes and are reported. When the image file is missing
but the JSON embeds ``imageData``, the embedded image is used.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from pathlib import Path

from streetwatch.datasets.importers.common import (
    ImporterError,
    SourceBox,
    SourceImage,
    SourceScan,
)


def _box(shape_type: str, points: list[list[float]]) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = (xs[0], ys[0]), (xs[1], ys[1])
        radius = math.hypot(px - cx, py - cy)
        return cx - radius, cy - radius, cx + radius, cy + radius
    return min(xs), min(ys), max(xs), max(ys)


def scan_labelme(source: Path, images_dir: Path | None = None) -> SourceScan:
    """Read every LabelMe ``*.json`` under a folder.

    Raises:
        ImporterError: when there are no JSON files.
    """
    files = sorted(source.rglob("*.json"))
    if not files:
        raise ImporterError(f"{source}: no LabelMe .json files")
    scan = SourceScan("labelme", source, [], [])
    for path in files:
        where = path.relative_to(source).as_posix()
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            shapes = content["shapes"]
            image_name = str(content.get("imagePath") or f"{path.stem}.jpg")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            scan.problems.append((where, f"not a LabelMe file ({exc}); image not imported"))
            continue
        name = image_name.replace("\\", "/")
        image_path = images_dir / Path(name).name if images_dir else path.parent / name
        data = None
        if not image_path.exists() and content.get("imageData"):
            try:
                data = base64.b64decode(content["imageData"], validate=True)
            except (binascii.Error, ValueError):
                scan.problems.append((where, "imageData is not valid base64"))
        relative = (image_path.relative_to(source).as_posix()
                    if image_path.is_relative_to(source) else image_path.name)
        width, height = content.get("imageWidth"), content.get("imageHeight")
        image = SourceImage(
            relative=relative,
            split="train",
            path=image_path,
            data=data,
            declared_size=(int(width), int(height)) if width and height else None,
        )
        for index, shape in enumerate(shapes):
            at = f"{where}: shapes[{index}]"
            shape_type = str(shape.get("shape_type") or "polygon")
            label = str(shape.get("label", ""))
            points = shape.get("points") or []
            if label and label not in scan.classes:
                scan.classes.append(label)  # mappable even if all its shapes are points
            if shape_type not in ("rectangle", "polygon", "circle"):
                scan.problems.append((at, f"shape_type {shape_type!r} ({label}) is not a box"))
                continue
            if not label or len(points) < 2:
                scan.problems.append((at, "shape needs a label and at least two points"))
                continue
            try:
                xyxy = _box(shape_type, points)
            except (TypeError, ValueError, IndexError):
                scan.problems.append((at, "points are not [x, y] number pairs"))
                continue
            if label not in scan.classes:
                scan.classes.append(label)
            image.boxes.append(SourceBox(label, xyxy, normalized=False, where=at))
        scan.images.append(image)
    return scan
