"""The streetwatch dataset format: a YOLO directory plus ``manifest.jsonl``.

Layout::

    DIR/data.yaml                    names (the taxonomy's keys), split folders, taxonomy version,
                                     and ``eval_only: true`` on a dataset that may only evaluate
    DIR/images/{train,val,test}/*    image files, names unique across the whole dataset
    DIR/labels/{train,val,test}/*.txt
    DIR/manifest.jsonl               one row per image (see ``ImageRecord``)

Datasets are written through :class:`DatasetWriter`, which builds the directory beside its
destination and renames it into place only when complete, so a failed run leaves nothing
half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streetwatch.datasets.images import IMAGE_SUFFIXES, ImageInfo, inspect_image_bytes
from streetwatch.datasets.labels import Labels, read_labels
from streetwatch.models.files import atomic_write_text
from streetwatch.models.taxonomy import TAXONOMY

SPLITS: tuple[str, ...] = ("train", "val", "test")
# When one image turns up in several splits, the copy in the most held-out split is the one
# to keep: lower rank wins.
HELD_OUT_RANK: dict[str, int] = {"test": 0, "val": 1, "train": 2}
DATA_YAML = "data.yaml"
MANIFEST = "manifest.jsonl"
# The data.yaml key that marks a dataset evaluation-only: `streetwatch train` refuses to train
# on it and treats all of its images as held out.
EVAL_ONLY_KEY = "eval_only"


class DatasetError(ValueError):
    """A dataset directory that cannot be read as a streetwatch dataset."""


class ManifestError(DatasetError):
    """A manifest row that cannot be read."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class ImageRecord(BaseModel):
    """One manifest row.

    Attributes:
        path: Image path relative to the dataset root, POSIX style (``images/train/a.jpg``).
        sha256: Hex digest of the image file.
        width: Displayed width in pixels.
        height: Displayed height in pixels.
        source: Where the image came from (importer and original path, generator and seed...).
        group: Images that must stay in one split: a video, a camera-day, an original file.
        split: ``train``, ``val`` or ``test``.
        meta: Free-form provenance strings (case id, reviewer, model version...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    source: str
    group: str
    split: str = Field(pattern=r"^(train|val|test)$")
    meta: dict[str, str] = Field(default_factory=dict)

    @property
    def label_path(self) -> str:
        """The label file's path relative to the dataset root."""
        return label_path_for(self.path)

    @property
    def name(self) -> str:
        """The image file name."""
        return PurePosixPath(self.path).name


def label_path_for(image_path: str) -> str:
    """``images/<split>/x.jpg`` -> ``labels/<split>/x.txt`` (ultralytics' rule)."""
    parts = PurePosixPath(image_path).parts
    if len(parts) < 2 or parts[0] != "images":
        raise DatasetError(f"image path {image_path!r} is not under images/")
    return str(PurePosixPath("labels", *parts[1:]).with_suffix(".txt"))


def data_yaml_content(names: list[str]) -> dict[str, Any]:
    """The ``data.yaml`` of a streetwatch dataset; ``path`` is left out so that tools
    resolve the split folders relative to the file itself."""
    return {
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(names)),
        "taxonomy_version": TAXONOMY.version,
    }


def read_names(data_yaml: Path) -> list[str]:
    """Class names from a YOLO ``data.yaml``, given as a list or an ``{id: name}`` mapping.

    Raises:
        DatasetError: naming the file and what is wrong.
    """
    try:
        content = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{data_yaml}: missing") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"{data_yaml}: not valid YAML ({exc})") from None
    if not isinstance(content, dict) or "names" not in content:
        raise DatasetError(f"{data_yaml}: no 'names' key")
    names = content["names"]
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError(f"{data_yaml}: 'names' keys must be integers") from None
        if ids != list(range(len(ids))):
            raise DatasetError(f"{data_yaml}: 'names' ids must be 0..{len(ids) - 1}, got {ids}")
        return [str(names[k]) for k in sorted(names, key=int)]
    raise DatasetError(f"{data_yaml}: 'names' must be a list or a mapping")


def iter_manifest(path: Path) -> Iterator[tuple[int, ImageRecord | ManifestError]]:
    """Every non-blank row of ``manifest.jsonl`` with its line number: the record, or the
    error that names its first bad field. For tools that report every bad row."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, ImageRecord.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "row"
                yield number, ManifestError(path, number, f"field {where!r}: {first['msg']}")


def read_manifest(path: Path) -> list[ImageRecord]:
    """Read ``manifest.jsonl``.

    Raises:
        ManifestError: naming the file, line and field of the first bad row.
    """
    records: list[ImageRecord] = []
    for _, row in iter_manifest(path):
        if isinstance(row, ManifestError):
            raise row
        records.append(row)
    return records


def write_manifest(path: Path, records: Iterable[ImageRecord]) -> None:
    """Write ``manifest.jsonl`` atomically (temp file, then rename)."""
    text = "".join(record.model_dump_json() + "\n" for record in records)
    atomic_write_text(path, text)


@dataclass
class Dataset:
    """A streetwatch dataset on disk: its class names and manifest rows."""

    root: Path
    names: list[str]
    records: list[ImageRecord]

    @classmethod
    def open(cls, root: Path) -> Dataset:
        """Read ``data.yaml`` and ``manifest.jsonl`` of a dataset directory.

        Raises:
            DatasetError: when the directory, either file, or a row is missing or malformed.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: not a directory")
        names = read_names(root / DATA_YAML)
        manifest = root / MANIFEST
        if not manifest.exists():
            raise DatasetError(
                f"{manifest}: missing; a streetwatch dataset needs one "
                "(`streetwatch data import yolo` or `data validate --fix` creates it)"
            )
        return cls(root=root, names=names, records=read_manifest(manifest))

    def split(self, name: str) -> list[ImageRecord]:
        """Records of one split, in manifest order."""
        return [r for r in self.records if r.split == name]

    def image_path(self, record: ImageRecord) -> Path:
        """Absolute path of a record's image."""
        return self.root / record.path

    def labels(self, record: ImageRecord) -> Labels:
        """A record's boxes (strict: a malformed label file raises ``LabelFileError``)."""
        return read_labels(self.root / record.label_path)

    def iter_labels(self) -> Iterator[tuple[ImageRecord, Labels]]:
        """Every record with its labels."""
        for record in self.records:
            yield record, self.labels(record)


def safe_image_name(relative: str) -> str:
    """A flat, filesystem-safe image name derived from a source-relative path.

    ``shop/2024/a b.JPG`` -> ``shop__2024__a_b.jpg``: flattening keeps names unique when
    sources nest folders; the suffix is lower-cased so ultralytics recognises it.
    """
    path = PurePosixPath(relative.replace("\\", "/"))
    stem = "__".join([*path.parent.parts, path.stem]) if path.parent.parts else path.stem
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip(".")
    return f"{stem or 'image'}{path.suffix.lower()}"


@dataclass
class DatasetWriter:
    """Builds a dataset in a temporary folder and moves it into place on success.

    Use as a context manager::

        with DatasetWriter(out) as writer:
            writer.add(image_bytes, name="a.jpg", split="train", labels=labels, ...)

    On an exception nothing is left at ``out`` (nor beside it); an existing ``out`` is replaced
    only with ``overwrite=True`` and only once the new dataset is complete. ``extra_yaml``
    adds keys to ``data.yaml`` after the standard ones (e.g. ``{EVAL_ONLY_KEY: True}``); it
    cannot replace a standard key.
    """

    out: Path
    names: list[str] = field(default_factory=lambda: TAXONOMY.keys)
    overwrite: bool = False
    extra_yaml: dict[str, Any] = field(default_factory=dict)
    records: list[ImageRecord] = field(default_factory=list, init=False)
    _tmp: Path | None = field(default=None, init=False)
    _stems: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra_yaml) & set(data_yaml_content(self.names)))
        if clash:
            raise ValueError(f"extra_yaml cannot replace the data.yaml key(s) {clash}")

    def __enter__(self) -> DatasetWriter:
        self.out = Path(self.out)
        occupied = self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir()))
        if occupied and not self.overwrite:
            raise DatasetError(f"{self.out}: already exists; choose another --out or --force")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        for split in SPLITS:
            (self._tmp / "images" / split).mkdir(parents=True)
            (self._tmp / "labels" / split).mkdir(parents=True)
        return self

    @property
    def staging(self) -> Path:
        """The temporary folder being filled."""
        if self._tmp is None:
            raise RuntimeError("DatasetWriter used outside its `with` block")
        return self._tmp

    def has_name(self, name: str) -> bool:
        """Whether an image with this file stem is already in the dataset."""
        return PurePosixPath(name).stem in self._stems

    def unique_name(self, name: str) -> str:
        """``name``, or ``name`` with a numeric suffix if its stem is taken."""
        path = PurePosixPath(name)
        candidate, counter = name, 1
        while self.has_name(candidate):
            candidate = f"{path.stem}_{counter}{path.suffix}"
            counter += 1
        return candidate

    def add(
        self,
        data: bytes,
        *,
        name: str,
        split: str,
        labels: Labels,
        source: str,
        group: str,
        info: ImageInfo | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> ImageRecord:
        """Add one image with its labels.

        Args:
            data: The encoded image file, stored byte for byte.
            name: File name; its stem must be unique within the dataset.
            split: ``train``, ``val`` or ``test``.
            labels: Boxes; class ids index ``self.names``.
            source: Provenance of the image.
            group: Split group (see ``ImageRecord.group``).
            info: Size and hash if the caller already decoded the image.
            meta: Extra provenance strings.

        Raises:
            DatasetError: for a bad split, name, suffix or class id.
            ImageFileError: when ``data`` is not a readable image.
        """
        if split not in SPLITS:
            raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in IMAGE_SUFFIXES or "/" in name:
            raise DatasetError(f"image name {name!r} must be a plain file name ending in "
                               f"one of {', '.join(sorted(IMAGE_SUFFIXES))}")
        if self.has_name(name):
            raise DatasetError(f"image name {name!r} is already in the dataset")
        if len(labels) and (labels.class_id.min() < 0 or labels.class_id.max() >= len(self.names)):
            raise DatasetError(f"{name}: class id out of range 0..{len(self.names) - 1}")
        info = info or inspect_image_bytes(data, Path(name))
        relative = f"images/{split}/{name}"
        (self.staging / relative).write_bytes(data)
        (self.staging / label_path_for(relative)).write_text(labels.to_text(), encoding="utf-8")
        record = ImageRecord(
            path=relative,
            sha256=info.sha256,
            width=info.width,
            height=info.height,
            source=source,
            group=group,
            split=split,
            meta=dict(meta or {}),
        )
        self.records.append(record)
        self._stems.add(PurePosixPath(name).stem)
        return record

    def write_extra(self, relative: str, text: str) -> None:
        """Write an extra text file (a report, a README) into the dataset."""
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tmp = self.staging
        if exc_type is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        try:
            (tmp / DATA_YAML).write_text(
                yaml.safe_dump({**data_yaml_content(self.names), **self.extra_yaml},
                               sort_keys=False, allow_unicode=True),
                encoding="utf-8",
            )
            write_manifest(tmp / MANIFEST, self.records)
            replace_dir(tmp, self.out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._tmp = None


def replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` to ``target``. An existing ``target`` is set aside
    first and deleted only once ``new`` is in place, so a failure leaves the old one."""
    if not target.exists():
        new.rename(target)
        return
    backup = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(backup)
    try:
        new.rename(target)
    except BaseException:
        backup.rename(target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
