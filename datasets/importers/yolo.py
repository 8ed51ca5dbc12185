"""Read a YOLO (ultralytics) dataset: ``data.yaml`` plus image and label folders.

Split rule: a split folder named like a split (``images/test``, ``valid``) keeps that name,
whatever data.yaml key points at it; so a source whose ``val:`` points at ``images/test``
keeps its test images in test. Otherwise the data.yaml key decides. Without usable keys the
reader looks for ``images/{train,val,valid,test}`` and ``{train,valid,test}/images``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streetwatch.datasets.format import HELD_OUT_RANK, DatasetError, read_names
from streetwatch.datasets.images import IMAGE_SUFFIXES
from streetwatch.datasets.importers.common import (
    ImporterError,
    SourceBox,
    SourceImage,
    SourceScan,
    split_from_name,
)
from streetwatch.datasets.labels import parse_label_line


def _yolo_label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder in the path becomes ``labels``."""
    parts = list(image.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _split_entries(content: dict[str, Any], base: Path) -> list[tuple[str, Path]]:
    """``(split, folder-or-list-file)`` pairs named by data.yaml."""
    entries: list[tuple[str, Path]] = []
    for key in ("train", "val", "test"):
        value = content.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            path = Path(str(item))
            entries.append((key, path if path.is_absolute() else base / path))
    return entries


def _default_entries(root: Path) -> list[tuple[str, Path]]:
    candidates = [root / "images" / name for name in ("train", "val", "valid", "test")]
    candidates += [root / name / "images" for name in ("train", "valid", "val", "test")]
    return [(split_from_name(p.name if p.parent.name == "images" else p.parent.name) or "train", p)
            for p in candidates if p.is_dir()]


def _images_of(entry: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if entry.suffix == ".txt" and entry.is_file():
        listed = [line.strip() for line in entry.read_text(encoding="utf-8").splitlines()]
        return [(entry.parent / line) for line in listed if line]
    raise ImporterError(f"{entry}: named in data.yaml but neither a folder nor a list file")


def _read_boxes(label: Path, names: list[str], where: str) -> tuple[list[SourceBox],
                                                                    list[tuple[str, str]]]:
    boxes: list[SourceBox] = []
    problems: list[tuple[str, str]] = []
    if not label.exists():
        return boxes, problems
    for number, text in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        at = f"{where}:{number}"
        fields = text.split()
        try:
            if len(fields) > 5 and len(fields) % 2 == 1:
                # A segment line: class x1 y1 x2 y2 ...; its box is the polygon's extent.
                class_id = int(fields[0])
                xs = [float(v) for v in fields[1::2]]
                ys = [float(v) for v in fields[2::2]]
                xyxy = (min(xs), min(ys), max(xs), max(ys))
            else:
                class_id, (cx, cy, w, h) = parse_label_line(text)
                xyxy = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        except ValueError as exc:
            problems.append((at, str(exc)))
            continue
        if not 0 <= class_id < len(names):
            problems.append((at, f"class id {class_id} out of range 0..{len(names) - 1}"))
            continue
        boxes.append(SourceBox(names[class_id], xyxy, normalized=True, where=at))
    return boxes, problems


def scan_yolo(source: Path) -> SourceScan:
    """Read a YOLO dataset folder (or its data.yaml).

    Raises:
        ImporterError: when data.yaml is missing or malformed, or names no images.
    """
    data_yaml = source if source.is_file() else source / "data.yaml"
    if not data_yaml.exists():
        candidates = sorted(source.glob("*.yaml")) if source.is_dir() else []
        if len(candidates) != 1:
            raise ImporterError(f"{data_yaml}: missing; a YOLO source needs a data.yaml")
        data_yaml = candidates[0]
    try:
        names = read_names(data_yaml)
        content = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except DatasetError as exc:
        raise ImporterError(str(exc)) from None
    root = data_yaml.parent
    base = Path(str(content.get("path") or root))
    base = base if base.is_absolute() else root / base
    entries = [e for e in _split_entries(content, base) if e[1].exists()] or _default_entries(root)
    if not entries:
        raise ImporterError(f"{data_yaml}: names no existing image folders or list files")

    chosen: dict[Path, str] = {}
    names_in_entry: dict[Path, str] = {}
    for key, entry in entries:
        folder_split = split_from_name(entry.name) if entry.is_dir() else None
        if folder_split is None and entry.is_dir() and entry.name == "images":
            folder_split = split_from_name(entry.parent.name)
        split = folder_split or key
        for image in _images_of(entry):
            if entry.is_dir():
                names_in_entry[image] = image.relative_to(entry).as_posix()
            previous = chosen.get(image)
            # An image named under two keys goes to the more held-out split.
            if previous is None or HELD_OUT_RANK[split] < HELD_OUT_RANK[previous]:
                chosen[image] = split

    images: list[SourceImage] = []
    problems: list[tuple[str, str]] = []
    for image_path, split in sorted(chosen.items()):
        relative = _relative(image_path, root)
        label = _yolo_label_path(image_path)
        boxes, bad = _read_boxes(label, names, _relative(label, root))
        problems.extend(bad)
        images.append(SourceImage(relative=relative, split=split, boxes=boxes, path=image_path,
                                  name=names_in_entry.get(image_path, image_path.name)))
    seen = {p.resolve() for p in chosen}
    for label in sorted(root.rglob("labels/**/*.txt")):
        if not any(c.resolve() in seen for c in _image_candidates(label)):
            problems.append((_relative(label, root), "label file without an image; not imported"))
    return SourceScan("yolo", source, names, images, problems)


def _image_candidates(label: Path) -> list[Path]:
    parts = list(label.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "labels":
            parts[index] = "images"
            break
    stem = Path(*parts).with_suffix("")
    return [stem.with_suffix(s) for s in IMAGE_SUFFIXES] + [
        stem.with_suffix(s.upper()) for s in IMAGE_SUFFIXES
    ]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
