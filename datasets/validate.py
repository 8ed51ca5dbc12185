"""Check a dataset directory and list every problem with its file and line.

:func:`inspect_dataset` reads everything once into a :class:`DatasetInspection`; the list of
problems and the cleaned copy written by :func:`fix_dataset` both come from it, so what
``validate`` reports is exactly what ``--fix`` repairs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from streetwatch.datasets.format import (
    DATA_YAML,
    EVAL_ONLY_KEY,
    HELD_OUT_RANK,
    MANIFEST,
    SPLITS,
    DatasetError,
    DatasetWriter,
    ImageRecord,
    ManifestError,
    iter_manifest,
    read_names,
)
from streetwatch.datasets.images import (
    IMAGE_SUFFIXES,
    ImageFileError,
    ImageInfo,
    inspect_image,
)
from streetwatch.datasets.labels import Labels, parse_label_line
from streetwatch.models.taxonomy import TAXONOMY

# Corners may stray this far outside 0..1 (rounding); further is an error.
COORD_TOLERANCE = 1e-3

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding.

    Attributes:
        severity: ``error`` fails validation; ``warning`` is shown but does not.
        code: Stable short name of the kind of problem (``label-orphan``...).
        file: Path relative to the dataset root.
        line: 1-based line in ``file``, when the problem is on one line.
        message: What is wrong, in words.
    """

    severity: Severity
    code: str
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.severity}: {self.message} [{self.code}]"


@dataclass
class LabelLine:
    """A label line and what is wrong with it, if anything."""

    number: int
    class_id: int
    xywhn: tuple[float, float, float, float]
    problem: Problem | None = None
    clip: bool = False


@dataclass
class ImageEntry:
    """An image file found under ``images/<split>/``."""

    path: str
    split: str
    info: ImageInfo | None
    label_path: str
    label_exists: bool
    lines: list[LabelLine] = field(default_factory=list)


@dataclass
class DatasetInspection:
    """Everything read from a dataset directory, and the problems found in it."""

    root: Path
    names: list[str] | None
    images: list[ImageEntry]
    manifest: dict[str, ImageRecord]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity ``error``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems of severity ``warning``."""
        return [p for p in self.problems if p.severity == "warning"]


def _split_of(relative: PurePosixPath) -> str | None:
    parts = relative.parts
    return parts[1] if len(parts) >= 3 and parts[1] in SPLITS else None


def inspect_dataset(
    root: Path,
    progress: Callable[[list[Path]], Iterable[Path]] = lambda items: items,
) -> DatasetInspection:
    """Read a dataset directory and find every problem in it.

    Args:
        root: The dataset directory.
        progress: Wraps the list of image files (a progress bar).
    """
    root = Path(root)
    problems: list[Problem] = []

    def add(severity: Severity, code: str, file: str, line: int | None, message: str) -> None:
        problems.append(Problem(severity, code, file, line, message))

    if not root.is_dir():
        add("error", "not-a-directory", str(root), None, "not a directory")
        return DatasetInspection(root, None, [], {}, problems)

    names: list[str] | None = None
    try:
        names = read_names(root / DATA_YAML)
    except DatasetError as exc:
        add("error", "data-yaml", DATA_YAML, None, str(exc).removeprefix(f"{root / DATA_YAML}: "))
    if names is not None and names != TAXONOMY.keys:
        add("error", "names-not-taxonomy", DATA_YAML, None,
            f"names {names} differ from the streetwatch taxonomy v{TAXONOMY.version} "
            f"{TAXONOMY.keys}; import the data with a --map to convert it")

    image_files: list[Path] = []
    for path in sorted((root / "images").rglob("*")) if (root / "images").is_dir() else []:
        if not path.is_file():
            continue
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if _split_of(relative) is None:
            add("error", "image-outside-split", str(relative), None,
                f"not inside images/{{{','.join(SPLITS)}}}/")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            add("error", "image-type", str(relative), None,
                f"{path.suffix or 'no suffix'} is not an image type "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            image_files.append(path)
    if not image_files:
        add("error", "no-images", "images/", None, "no images found")

    images: list[ImageEntry] = []
    for path in progress(image_files):
        images.append(_inspect_image(root, path, names, add))

    _check_orphan_labels(root, images, add)
    _check_leaks_and_names(images, add)
    manifest = _check_manifest(root, images, add)
    return DatasetInspection(root, names, images, manifest, problems)


AddProblem = Callable[[Severity, str, str, "int | None", str], None]


def _inspect_image(root: Path, path: Path, names: list[str] | None,
                   add: AddProblem) -> ImageEntry:
    relative = path.relative_to(root).as_posix()
    split = _split_of(PurePosixPath(relative)) or "train"
    label_relative = str(PurePosixPath("labels", *PurePosixPath(relative).parts[1:])
                         .with_suffix(".txt"))
    info: ImageInfo | None = None
    try:
        info = inspect_image(path)
    except ImageFileError as exc:
        code = "image-empty" if exc.reason == "zero-byte file" else "image-unreadable"
        add("error", code, relative, None, exc.reason)
    label_file = root / label_relative
    entry = ImageEntry(relative, split, info, label_relative, label_file.is_file())
    if not entry.label_exists:
        add("warning", "label-missing", relative, None,
            f"no label file {label_relative}; treated as an image without boxes")
        return entry
    entry.lines = _inspect_label_file(label_file, label_relative, names)
    for line in entry.lines:
        if line.problem is not None:
            problem = line.problem
            add(problem.severity, problem.code, problem.file, problem.line, problem.message)
    return entry


def _inspect_label_file(path: Path, relative: str, names: list[str] | None) -> list[LabelLine]:
    lines: list[LabelLine] = []
    seen: dict[tuple[int, tuple[float, ...]], int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem("error", "label-unreadable", relative, None, str(exc))
        return [LabelLine(0, -1, (0.0, 0.0, 0.0, 0.0), problem)]
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue

        def bad(code: str, message: str, line_number: int = number) -> Problem:
            return Problem("error", code, relative, line_number, message)

        try:
            class_id, box = parse_label_line(raw)
        except ValueError as exc:
            lines.append(LabelLine(number, -1, (0.0, 0.0, 0.0, 0.0), bad("label-syntax", str(exc))))
            continue
        line = LabelLine(number, class_id, box)
        lines.append(line)
        cx, cy, w, h = box
        corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if (class_id, box) in seen:
            line.problem = bad("box-duplicate",
                               f"exact duplicate of line {seen[(class_id, box)]}")
        elif names is not None and not 0 <= class_id < len(names):
            line.problem = bad("class-out-of-range",
                               f"class id {class_id} out of range 0..{len(names) - 1}")
        elif not all(math.isfinite(v) for v in box):
            line.problem = bad("coord-non-finite", f"non-finite coordinate in {raw.strip()!r}")
        elif w <= 0 or h <= 0:
            line.problem = bad("box-zero-area", f"zero or negative area (w={w:g}, h={h:g})")
        elif min(corners) < -COORD_TOLERANCE or max(corners) > 1 + COORD_TOLERANCE:
            line.problem = bad("coord-out-of-range",
                               "box corners "
                               f"({', '.join(f'{v:.4f}' for v in corners)}) leave 0..1")
            line.clip = True
        else:
            line.clip = min(corners) < 0 or max(corners) > 1
        seen.setdefault((class_id, box), number)
    return lines


def _check_orphan_labels(root: Path, images: list[ImageEntry], add: AddProblem) -> None:
    expected = {entry.label_path for entry in images}
    labels_dir = root / "labels"
    for path in sorted(labels_dir.rglob("*.txt")) if labels_dir.is_dir() else []:
        relative = path.relative_to(root).as_posix()
        if relative not in expected:
            add("error", "label-orphan", relative, None,
                "label file without an image (its boxes are used by nothing)")


def _check_leaks_and_names(images: list[ImageEntry], add: AddProblem) -> None:
    by_hash: dict[str, list[ImageEntry]] = defaultdict(list)
    by_stem: dict[str, list[ImageEntry]] = defaultdict(list)
    for entry in images:
        if entry.info is not None:
            by_hash[entry.info.sha256].append(entry)
        by_stem[PurePosixPath(entry.path).stem].append(entry)
    for copies in by_hash.values():
        splits = {e.split for e in copies}
        for entry in copies:
            others = [e.path for e in copies if e is not entry]
            if len(splits) > 1:
                add("error", "split-leak", entry.path, None,
                    f"same image (sha256) is also in {', '.join(others)}: "
                    "evaluation would score images the model trained on")
            elif others:
                add("warning", "image-duplicate", entry.path, None,
                    f"same image (sha256) as {', '.join(others)}")
    for stem, entries in by_stem.items():
        if len(entries) > 1:
            for entry in entries:
                add("error", "name-collision", entry.path, None,
                    f"image name {stem!r} is used more than once; names must be unique "
                    "so images can move between splits")


def _check_manifest(root: Path, images: list[ImageEntry],
                    add: AddProblem) -> dict[str, ImageRecord]:
    path = root / MANIFEST
    if not path.exists():
        add("error", "manifest-missing", MANIFEST, None,
            "missing; `streetwatch data validate --fix OUT` writes one")
        return {}
    by_path: dict[str, ImageRecord] = {}
    line_of: dict[str, int] = {}
    for number, record in iter_manifest(path):
        if isinstance(record, ManifestError):
            add("error", "manifest-row", MANIFEST, record.line, record.reason)
            continue
        if record.path in by_path:
            add("error", "manifest-duplicate", MANIFEST, number,
                f"{record.path} already listed on line {line_of[record.path]}")
            continue
        by_path[record.path] = record
        line_of[record.path] = number
    found = {entry.path: entry for entry in images}
    for image_path, record in by_path.items():
        entry = found.get(image_path)
        row = line_of[image_path]
        if entry is None:
            add("error", "manifest-stale", MANIFEST, row, f"{image_path} does not exist")
            continue
        if record.split != entry.split:
            add("error", "manifest-split", MANIFEST, row,
                f"{image_path}: manifest says split {record.split!r}, folder says {entry.split!r}")
        if entry.info is None:
            continue
        if record.sha256 != entry.info.sha256:
            add("error", "manifest-sha256", MANIFEST, row,
                f"{image_path}: sha256 differs from the file (changed after import?)")
        if (record.width, record.height) != (entry.info.width, entry.info.height):
            add("error", "manifest-size", MANIFEST, row,
                f"{image_path}: manifest says {record.width}x{record.height}, "
                f"image is {entry.info.width}x{entry.info.height}")
    for image_path in found:
        if image_path not in by_path:
            add("error", "manifest-unlisted", image_path, None, f"not listed in {MANIFEST}")
    return by_path


@dataclass
class FixReport:
    """What ``--fix`` changed in the copy."""

    images_kept: int = 0
    images_dropped: list[tuple[str, str]] = field(default_factory=list)
    lines_dropped: int = 0
    boxes_clipped: int = 0
    labels_created: int = 0
    labels_dropped: int = 0
    not_fixable: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable lines."""
        lines = [
            f"kept {self.images_kept} images; dropped {len(self.images_dropped)}",
            f"dropped {self.lines_dropped} bad label lines; clipped {self.boxes_clipped} boxes "
            "to the image",
            f"wrote {self.labels_created} empty label files; dropped {self.labels_dropped} "
            "orphan label files",
        ]
        lines += [f"  dropped image {path}: {why}" for path, why in self.images_dropped]
        lines += [f"  NOT FIXABLE: {problem}" for problem in self.not_fixable]
        return "\n".join(lines)


_UNFIXABLE = frozenset({"names-not-taxonomy", "data-yaml", "no-images", "not-a-directory"})


def _kept_yaml_keys(root: Path) -> dict[str, Any]:
    """The ``data.yaml`` flags a fixed copy must keep (``eval_only``: a fix must never turn
    an evaluation set into a trainable one)."""
    try:
        content = yaml.safe_load((root / DATA_YAML).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    if isinstance(content, dict) and content.get(EVAL_ONLY_KEY) is True:
        return {EVAL_ONLY_KEY: True}
    return {}


def fix_dataset(inspection: DatasetInspection, out: Path, *, overwrite: bool = False) -> FixReport:
    """Write a cleaned copy of an inspected dataset to ``out``; the input is never modified.

    Unreadable images, orphan labels and bad label lines are dropped; boxes are clipped to
    the image; missing label files become empty ones; an image in several splits is kept only
    in the most held-out one; the manifest is rebuilt (keeping source, group and meta of
    rows that still match).
    """
    report = FixReport()
    report.not_fixable = [p for p in inspection.problems if p.code in _UNFIXABLE]
    report.labels_dropped = sum(p.code == "label-orphan" for p in inspection.problems)
    names = inspection.names or TAXONOMY.keys
    keep = _copies_to_keep(inspection.images)
    with DatasetWriter(out, names=names, overwrite=overwrite,
                       extra_yaml=_kept_yaml_keys(inspection.root)) as writer:
        for entry in inspection.images:
            if entry.info is None:
                report.images_dropped.append((entry.path, "unreadable image"))
                continue
            if entry.path not in keep:
                report.images_dropped.append(
                    (entry.path, "same image is kept in a more held-out split"))
                continue
            report.labels_created += int(not entry.label_exists)
            class_ids, boxes = [], []
            written: set[tuple[int, str]] = set()
            for line in entry.lines:
                if line.problem is not None and not line.clip:
                    report.lines_dropped += 1
                    continue
                box = (_clipped(line.xywhn, entry.info.width, entry.info.height)
                       if line.clip else line.xywhn)
                # As written (6 decimals): clipping can make two boxes one.
                key = (line.class_id, Labels.from_arrays([line.class_id], [box]).to_text()
                       if box is not None else "")
                if box is None or key in written:
                    report.lines_dropped += 1
                    continue
                written.add(key)
                report.boxes_clipped += int(line.clip)
                class_ids.append(line.class_id)
                boxes.append(box)
            old = inspection.manifest.get(entry.path)
            name = writer.unique_name(PurePosixPath(entry.path).name)
            writer.add(
                (inspection.root / entry.path).read_bytes(),
                name=name,
                split=entry.split,
                labels=Labels.from_arrays(class_ids, boxes),
                source=old.source if old else f"unknown:{entry.path}",
                group=old.group if old else PurePosixPath(entry.path).stem,
                info=entry.info,
                meta=old.meta if old else None,
            )
            report.images_kept += 1
    return report


def _copies_to_keep(images: list[ImageEntry]) -> set[str]:
    best: dict[str, ImageEntry] = {}
    keep: set[str] = set()
    for entry in images:
        if entry.info is None:
            continue
        current = best.get(entry.info.sha256)
        if current is None or HELD_OUT_RANK[entry.split] < HELD_OUT_RANK[current.split]:
            best[entry.info.sha256] = entry
    for entry in images:
        if entry.info is None:
            continue
        chosen = best[entry.info.sha256]
        # Copies within the chosen split all stay: only cross-split leaks are removed.
        if entry.split == chosen.split:
            keep.add(entry.path)
    return keep


def _clipped(xywhn: tuple[float, float, float, float], width: int, height: int
             ) -> tuple[float, float, float, float] | None:
    """The box clipped to the image, or None when under a pixel is left on a side."""
    cx, cy, w, h = xywhn
    x1, y1 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
    x2, y2 = min(1.0, cx + w / 2), min(1.0, cy + h / 2)
    if (x2 - x1) * width < 1 or (y2 - y1) * height < 1:
        return None
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
