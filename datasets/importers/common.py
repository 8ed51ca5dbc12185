"""What every importer shares: the source scan, the class mapping, and writing the dataset.

Each format module only *reads* its source into a :class:`SourceScan` (images, their boxes
under source class names, and anything it could not read). :func:`import_scan` then maps
classes, checks every image, clips boxes, writes a streetwatch dataset and returns a report
of everything kept, dropped or rejected: nothing is lost silently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streetwatch.datasets.format import HELD_OUT_RANK, SPLITS, DatasetWriter, safe_image_name
from streetwatch.datasets.images import (
    IMAGE_SUFFIXES,
    ImageFileError,
    ImageInfo,
    inspect_image_bytes,
    sha256_bytes,
)
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY

# Boxes smaller than this (pixels, either side) after clipping are degenerate.
MIN_BOX_SIDE_PX = 1.0
REPORT_FILE = "import-report.json"


class ImporterError(ValueError):
    """An import that cannot start: bad mapping, unreadable annotation file, bad options."""


@dataclass(frozen=True)
class SourceBox:
    """A box as the source states it.

    Attributes:
        label: Source class name.
        xyxy: Corners; pixels, or 0..1 fractions when ``normalized``.
        normalized: Whether ``xyxy`` is in fractions of the image size.
        where: Where the box is stated (``file:line`` or ``file``), for reports.
    """

    label: str
    xyxy: tuple[float, float, float, float]
    normalized: bool
    where: str


@dataclass
class SourceImage:
    """An image of the source with its boxes.

    Attributes:
        relative: Path relative to the source root (names the image in reports and output).
        split: Split the source puts it in.
        boxes: Its boxes.
        path: The image file, or None when the bytes are embedded (``data``).
        data: Embedded image bytes, when the source carries them.
        declared_size: ``(width, height)`` the annotation claims, if it says.
        group: A split group the source implies (a video task...), or None for per-file.
        name: Preferred output file name, when the source-relative path is a poor one
            (YOLO's ``images/train/`` prefix); made unique on writing.
    """

    relative: str
    split: str
    boxes: list[SourceBox] = field(default_factory=list)
    path: Path | None = None
    data: bytes | None = None
    declared_size: tuple[int, int] | None = None
    group: str | None = None
    name: str | None = None

    def read_bytes(self) -> bytes:
        """The encoded image; raises ``ImageFileError`` if it cannot be read."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ImageFileError(Path(self.relative), "no image file and no embedded data")
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise ImageFileError(self.path, "image file not found") from None
        except OSError as exc:
            raise ImageFileError(self.path, f"cannot read file ({exc.strerror})") from None


@dataclass
class SourceScan:
    """Everything a format reader found.

    Attributes:
        format: Importer name.
        root: The source path given by the user.
        classes: Source class names: declared by the source, or discovered in its boxes.
        images: Images with boxes.
        problems: ``(where, reason)`` for things the reader could not turn into boxes or
            images; they are reported as dropped.
    """

    format: str
    root: Path
    classes: list[str]
    images: list[SourceImage]
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ClassMap:
    """Source class name -> streetwatch class key, or None to drop the box and keep the image."""

    targets: dict[str, str | None]

    @classmethod
    def parse(cls, specs: Iterable[str]) -> ClassMap:
        """Parse ``SRC=TARGET`` strings; TARGET is a taxonomy key or ``none``.

        Raises:
            ImporterError: for a malformed spec, an unknown target or a class mapped twice.
        """
        targets: dict[str, str | None] = {}
        for spec in specs:
            source, sep, target = spec.rpartition("=")
            if not sep or not source or not target:
                raise ImporterError(f"--map {spec!r}: expected SRC_CLASS=TARGET")
            if source in targets:
                raise ImporterError(f"--map: source class {source!r} is mapped twice")
            if target == "none":
                targets[source] = None
                continue
            if target not in TAXONOMY.keys:
                raise ImporterError(
                    f"--map {spec!r}: {target!r} is not a streetwatch class; "
                    f"use one of {', '.join(TAXONOMY.keys)} or 'none'"
                )
            targets[source] = target
        return cls(targets)

    def check_covers(self, classes: Iterable[str]) -> None:
        """Every source class must be mapped, and every mapping must name a source class.

        Raises:
            ImporterError: listing the unmapped or unknown classes.
        """
        classes = list(dict.fromkeys(classes))
        unmapped = [c for c in classes if c not in self.targets]
        if unmapped:
            hint = " ".join(f"--map {c}=<class|none>" for c in unmapped)
            raise ImporterError(
                f"source class(es) not mapped: {', '.join(unmapped)}. Map each to a "
                f"streetwatch class ({', '.join(TAXONOMY.keys)}) or to 'none': {hint}"
            )
        unknown = [c for c in self.targets if c not in classes]
        if unknown:
            raise ImporterError(
                f"--map names class(es) the source does not have: {', '.join(unknown)}; "
                f"source classes are: {', '.join(classes)}"
            )


@dataclass
class ImportReport:
    """What an import kept, dropped and rejected."""

    format: str
    source: str
    out: str
    images_by_split: Counter[str] = field(default_factory=Counter)
    boxes_by_class: Counter[str] = field(default_factory=Counter)
    dropped_by_mapping: Counter[str] = field(default_factory=Counter)
    clipped_boxes: int = 0
    empty_images: int = 0
    leaked_copies: list[tuple[str, str]] = field(default_factory=list)
    rejected_images: list[tuple[str, str]] = field(default_factory=list)
    dropped_boxes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images(self) -> int:
        """Images written."""
        return sum(self.images_by_split.values())

    def to_json(self) -> str:
        """The report as JSON (stored in the dataset as ``import-report.json``)."""
        return json.dumps(
            {
                "format": self.format,
                "source": self.source,
                "images": self.images,
                "images_by_split": dict(self.images_by_split),
                "boxes_by_class": dict(self.boxes_by_class),
                "dropped_by_mapping": dict(self.dropped_by_mapping),
                "clipped_boxes": self.clipped_boxes,
                "empty_images": self.empty_images,
                "leaked_copies_dropped": [{"image": i, "kept": k} for i, k in self.leaked_copies],
                "rejected_images": [{"image": i, "reason": r} for i, r in self.rejected_images],
                "dropped_boxes": [{"where": w, "reason": r} for w, r in self.dropped_boxes],
            },
            indent=2,
            ensure_ascii=False,
        )

    def summary(self) -> str:
        """A few human-readable lines."""
        splits = ", ".join(f"{s} {self.images_by_split[s]}" for s in SPLITS)
        lines = [f"imported {self.images} images ({splits}) into {self.out}"]
        for key in TAXONOMY.keys:
            if self.boxes_by_class[key]:
                lines.append(f"  {key}: {self.boxes_by_class[key]} boxes")
        for name, count in sorted(self.dropped_by_mapping.items()):
            lines.append(f"  {name} -> none: {count} boxes dropped, images kept")
        lines.append(f"  images without boxes: {self.empty_images}")
        if self.leaked_copies:
            lines.append(
                f"  {len(self.leaked_copies)} images were byte-identical copies of images in a "
                "more held-out split; each was kept once, in that split (e.g. "
                f"{self.leaked_copies[0][0]} = {self.leaked_copies[0][1]})"
            )
        if self.clipped_boxes:
            lines.append(f"  boxes clipped to the image: {self.clipped_boxes}")
        for image, reason in self.rejected_images:
            lines.append(f"  REJECTED image {image}: {reason}")
        for where, reason in self.dropped_boxes:
            lines.append(f"  DROPPED box {where}: {reason}")
        return "\n".join(lines)


def group_function(pattern: str | None) -> Callable[[SourceImage], str]:
    """How an image's split group is derived.

    A group the source implies (a video task) comes first. Otherwise, without a pattern,
    each original file (its source-relative path) is its own group. With one, the first
    capture group (or the whole match) of ``re.search`` on the image's name within its split
    folder is the group, e.g. ``'^(.*)_frame\\d+'`` puts the frames of one video together,
    whichever split folders the source spread them over; a name it does not match is its
    own group.

    Raises:
        ImporterError: for an invalid pattern.
    """
    if pattern is None:
        return lambda image: image.group or str(Path(image.relative).with_suffix(""))
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ImporterError(f"--group-regex {pattern!r}: {exc}") from None

    def group_of(image: SourceImage) -> str:
        if image.group:
            return image.group
        name = image.name or image.relative
        match = regex.search(name)
        if match is None:
            return str(Path(name).with_suffix(""))
        return match.group(1) if regex.groups else match.group(0)

    return group_of


def _clip_box(
    box: SourceBox, width: int, height: int
) -> tuple[tuple[float, float, float, float] | None, bool, str]:
    """Pixel corners clipped to the image, whether clipping moved them, and why not if None."""
    values = np.array(box.xyxy, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None, False, "non-finite coordinate"
    if box.normalized:
        values = values * np.array([width, height, width, height])
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        return None, False, f"zero or negative area ({x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f})"
    cx1, cy1 = max(0.0, min(x1, width)), max(0.0, min(y1, height))
    cx2, cy2 = max(0.0, min(x2, width)), max(0.0, min(y2, height))
    if cx2 - cx1 < MIN_BOX_SIDE_PX or cy2 - cy1 < MIN_BOX_SIDE_PX:
        return None, False, f"outside the {width}x{height} image or under 1 px after clipping"
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return (cx1, cy1, cx2, cy2), clipped, ""


def import_scan(
    scan: SourceScan,
    class_map: ClassMap,
    out: Path,
    *,
    overwrite: bool = False,
    split: str | None = None,
    group_regex: str | None = None,
    keep_leaks: bool = False,
    progress: Callable[[Iterable[SourceImage]], Iterable[SourceImage]] = lambda it: it,
) -> ImportReport:
    """Write a scanned source as a streetwatch dataset.

    Args:
        scan: What a format reader found.
        class_map: Source class -> streetwatch key or None; must cover ``scan.classes``.
        out: Destination folder; written atomically.
        overwrite: Replace an existing ``out``.
        split: Put every image in this split instead of the source's.
        group_regex: See :func:`group_function`.
        keep_leaks: Keep an image that the source has in two splits in both. By default it
            is kept once, in the more held-out split (test, then val), with its labels there:
            a test image that is also a training image measures nothing.
        progress: Wraps the image iterable (a progress bar).

    Raises:
        ImporterError: when the mapping does not cover the source classes, or the split is bad.
    """
    class_map.check_covers(scan.classes)
    if split is not None and split not in SPLITS:
        raise ImporterError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    group_of = group_function(group_regex)
    report = ImportReport(format=scan.format, source=str(scan.root), out=str(out))
    report.dropped_boxes.extend(scan.problems)
    prepared = []
    for image in progress(scan.images):
        info = _prepare(image, report)
        if info is not None:
            prepared.append((image, info))
    if not (keep_leaks or split):
        prepared = _drop_leaked_copies(prepared, report)
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for image, info in prepared:
            _import_image(image, info, class_map, writer, report, split, group_of)
        writer.write_extra(REPORT_FILE, report.to_json() + "\n")
    return report


def _prepare(image: SourceImage, report: ImportReport) -> ImageInfo | None:
    """Decode and check an image; record why it is rejected, if it is."""
    suffix = Path(image.relative).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        report.rejected_images.append((image.relative, f"unsupported image type {suffix!r}"))
        return None
    try:
        info = inspect_image_bytes(image.read_bytes(), Path(image.relative))
    except ImageFileError as exc:
        report.rejected_images.append((image.relative, exc.reason))
        return None
    if image.declared_size is not None and image.declared_size not in (
        (info.width, info.height),
        (info.height, info.width),
    ):
        declared = f"{image.declared_size[0]}x{image.declared_size[1]}"
        report.rejected_images.append(
            (image.relative, f"annotation says {declared} but the image is "
                             f"{info.width}x{info.height}")
        )
        return None
    return info


def _drop_leaked_copies(prepared: list[tuple[SourceImage, ImageInfo]],
                        report: ImportReport) -> list[tuple[SourceImage, ImageInfo]]:
    """Keep each image that appears in several splits only in its most held-out split.

    Only images that passed their checks compete, so a rejected held-out copy never costs
    the good copy in another split."""
    best: dict[str, SourceImage] = {}
    for image, info in prepared:
        kept = best.get(info.sha256)
        if kept is None or HELD_OUT_RANK[image.split] < HELD_OUT_RANK[kept.split]:
            best[info.sha256] = image
    result: list[tuple[SourceImage, ImageInfo]] = []
    for image, info in prepared:
        kept = best[info.sha256]
        if kept.split != image.split:
            report.leaked_copies.append((image.relative, kept.relative))
            continue
        result.append((image, info))
    return result


def _import_image(
    image: SourceImage,
    info: ImageInfo,
    class_map: ClassMap,
    writer: DatasetWriter,
    report: ImportReport,
    split: str | None,
    group_of: Callable[[SourceImage], str],
) -> None:
    data = image.read_bytes()
    if sha256_bytes(data) != info.sha256:
        report.rejected_images.append((image.relative, "file changed during the import"))
        return
    width, height = info.width, info.height
    class_ids: list[int] = []
    corners: list[tuple[float, float, float, float]] = []
    for box in image.boxes:
        target = class_map.targets[box.label]
        if target is None:
            report.dropped_by_mapping[box.label] += 1
            continue
        xyxy, clipped, reason = _clip_box(box, width, height)
        if xyxy is None:
            report.dropped_boxes.append((box.where, reason))
            continue
        class_id = TAXONOMY.by_key(target).id
        if any(c == class_id and np.allclose(xyxy, o) for c, o in zip(class_ids, corners,
                                                                      strict=True)):
            report.dropped_boxes.append((box.where, "exact duplicate of another box"))
            continue
        report.clipped_boxes += int(clipped)
        class_ids.append(class_id)
        corners.append(xyxy)
    labels = Labels.from_xyxy_pixels(class_ids, corners, width, height)
    target_split = split or image.split
    writer.add(
        data,
        name=writer.unique_name(safe_image_name(image.name or image.relative)),
        split=target_split,
        labels=labels,
        source=f"{report.format}:{report.source}/{image.relative}",
        group=group_of(image),
        info=info,
    )
    report.images_by_split[target_split] += 1
    report.empty_images += int(not class_ids)
    for class_id in class_ids:
        report.boxes_by_class[TAXONOMY.by_id(class_id).key] += 1


_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def split_from_name(name: str) -> str | None:
    """The split a folder, subset or file name stands for (``valid`` -> ``val``), if any."""
    lowered = name.lower()
    if lowered in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[lowered]
    for word, split in _SPLIT_ALIASES.items():
        if re.search(rf"(^|[^a-z]){word}([^a-z]|$)", lowered):
            return split
    return None
