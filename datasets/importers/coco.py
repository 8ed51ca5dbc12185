"""Read a COCO detection JSON (``images``, ``annotations``, ``categories``).

Boxes are ``[x, y, width, height]`` in pixels. The split comes from ``--split``, else from the
JSON file name (``instances_val2017.json`` -> val), else train. Images carrying a
``video_id`` are grouped by it, so frames of one video stay in one split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streetwatch.datasets.importers.common import (
    ImporterError,
    SourceBox,
    SourceImage,
    SourceScan,
    split_from_name,
)


def _load(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImporterError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise ImporterError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(content, dict):
        raise ImporterError(f"{path}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(content.get(key), list):
            raise ImporterError(f"{path}: field {key!r} missing or not a list")
    return content


def scan_coco(source: Path, images_dir: Path | None = None) -> SourceScan:
    """Read one COCO JSON file, or every ``*.json`` in a folder's ``annotations/``.

    Raises:
        ImporterError: for unreadable JSON, missing fields or conflicting categories.
    """
    if source.is_dir():
        files = sorted((source / "annotations").glob("*.json")) or sorted(source.glob("*.json"))
        if not files:
            raise ImporterError(f"{source}: no COCO JSON files in it or in annotations/")
        root = source
    else:
        files, root = [source], source.parent
    if images_dir is None:
        images_dir = root / "images" if (root / "images").is_dir() else root
    scan = SourceScan("coco", source, [], [])
    for path in files:
        _scan_file(path, images_dir, scan)
    return scan


def _scan_file(path: Path, images_dir: Path, scan: SourceScan) -> None:
    content = _load(path)
    split = split_from_name(path.stem) or "train"
    categories: dict[int, str] = {}
    for index, category in enumerate(content["categories"]):
        try:
            categories[int(category["id"])] = str(category["name"])
        except (KeyError, TypeError, ValueError):
            raise ImporterError(f"{path}: categories[{index}] needs an integer id and a name") \
                from None
    for name in categories.values():
        if name not in scan.classes:
            scan.classes.append(name)
    by_id: dict[int, SourceImage] = {}
    for index, entry in enumerate(content["images"]):
        try:
            image_id, file_name = int(entry["id"]), str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            raise ImporterError(f"{path}: images[{index}] needs an integer id and a file_name") \
                from None
        try:
            size = ((int(entry["width"]), int(entry["height"]))
                    if "width" in entry or "height" in entry else None)
        except (KeyError, TypeError, ValueError):
            raise ImporterError(f"{path}: images[{index}] needs integer width and height "
                                "(or neither)") from None
        video = entry.get("video_id")
        by_id[image_id] = SourceImage(
            relative=file_name,
            split=split,
            path=images_dir / file_name,
            declared_size=size,
            group=f"{path.stem}/video-{video}" if video is not None else None,
        )
    for index, annotation in enumerate(content["annotations"]):
        where = f"{path.name}: annotations[{index}]"
        image = by_id.get(annotation.get("image_id", -1))
        if image is None:
            scan.problems.append((where, f"image_id {annotation.get('image_id')!r} not in images"))
            continue
        label = categories.get(annotation.get("category_id", -1))
        if label is None:
            scan.problems.append((where, f"category_id {annotation.get('category_id')!r} "
                                         "not in categories"))
            continue
        try:
            x, y, w, h = (float(v) for v in annotation["bbox"])
        except (KeyError, TypeError, ValueError):
            scan.problems.append((where, "bbox must be [x, y, width, height]"))
            continue
        image.boxes.append(SourceBox(label, (x, y, x + w, y + h), normalized=False, where=where))
    scan.images.extend(by_id.values())
