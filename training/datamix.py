"""Several streetwatch datasets as one ultralytics training set, checked before any training.

The mix is a folder of symlinks inside the run (``RUN/data``): ultralytics writes its label
caches beside the labels it reads, so pointing it at the datasets themselves would write into
them. A dataset's weight repeats its training images (2 = twice per epoch, 0.5 = a fixed
random half), so a small real set is not drowned by a large synthetic one.

Before anything is written the mix is checked:
- every dataset passes ``data validate`` and uses the streetwatch taxonomy;
- no training image is an evaluation image (the ``test`` split of any dataset given, or any
  image of a dataset marked ``eval_only``), judged by the sha256 in the manifests.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from streetwatch.datasets.format import (
    DATA_YAML,
    EVAL_ONLY_KEY,
    MANIFEST,
    Dataset,
    DatasetError,
    ImageRecord,
)
from streetwatch.datasets.validate import inspect_dataset
from streetwatch.models.taxonomy import TAXONOMY


class DataMixError(ValueError):
    """Datasets that cannot be trained on as given; the message names the dataset and file."""


class ContaminationError(DataMixError):
    """A training image is also an evaluation image."""


def parse_weighted(text: str, *, name: str, allow_zero: bool,
                   error: type[ValueError]) -> tuple[Path, float]:
    """``PATH`` -> (PATH, 1.0); ``PATH:NUMBER`` -> (PATH, NUMBER), the number finite and
    > 0 (>= 0 with ``allow_zero``), else ``error`` naming it as ``name``. A path may hold a
    ':' of its own: only a number after the last one is taken."""
    path, sep, number = text.rpartition(":")
    try:
        value = float(number) if sep and path else None
    except ValueError:
        value = None
    if value is None:
        return Path(text), 1.0
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise error(f"{text}: the {name} after ':' must be a number {bound}")
    return Path(path), value


@dataclass(frozen=True)
class Weighted:
    """A path with a weight, written ``PATH[:WEIGHT]`` on the command line."""

    path: Path
    weight: float = 1.0

    def __str__(self) -> str:
        return str(self.path) if self.weight == 1 else f"{self.path}:{self.weight:g}"


@dataclass(frozen=True)
class DataSource(Weighted):
    """A dataset to train on, with its weight (how often its training images repeat)."""

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """``PATH`` or ``PATH:WEIGHT`` (the weight is a non-negative number)."""
        return cls(*parse_weighted(text, name="weight", allow_zero=True, error=DataMixError))


@dataclass(frozen=True)
class SourceSummary:
    """What one dataset gave the mix."""

    path: str
    weight: float
    fingerprint: str
    train_images: int
    val_images: int
    train_used: int


@dataclass(frozen=True)
class DataMix:
    """A built mix: the ``data.yaml`` to give ultralytics and what went into it."""

    data_yaml: Path
    sources: tuple[SourceSummary, ...]
    train_images: int
    val_images: int

    def fingerprints(self) -> dict[str, str]:
        """Dataset path -> manifest hash: the training data fingerprint of a model card."""
        return {s.path: s.fingerprint for s in self.sources}


def manifest_fingerprint(root: Path) -> str:
    """The sha256 of a dataset's manifest: it names every image by hash, split and source."""
    return hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()


def is_eval_only(root: Path) -> bool:
    """Whether a dataset's ``data.yaml`` marks it evaluation-only."""
    try:
        content = yaml.safe_load((root / DATA_YAML).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(content, dict) and bool(content.get(EVAL_ONLY_KEY, False))


def open_checked(root: Path) -> Dataset:
    """Open a dataset that passes validation (which includes speaking the taxonomy).

    Raises:
        DataMixError: with the dataset's first validation errors (file, line, code).
    """
    if not (root / DATA_YAML).exists():
        raise DataMixError(f"{root / DATA_YAML}: missing; is {root} a streetwatch dataset?")
    inspection = inspect_dataset(root)
    errors = [p for p in inspection.problems if p.severity == "error"]
    if errors:
        shown = "\n  ".join(f"{root}/{p}" for p in errors[:5])
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise DataMixError(
            f"{root}: {len(errors)} validation error(s); fix them first "
            f"(streetwatch data validate {root} [--fix OUT]):\n  {shown}{more}")
    try:
        dataset = Dataset.open(root)
    except DatasetError as exc:
        raise DataMixError(str(exc)) from None
    return dataset


def check_contamination(train: list[tuple[Dataset, ImageRecord]],
                        held_out: dict[str, str]) -> None:
    """Refuse training images whose sha256 is an evaluation image's.

    Args:
        train: Training images with their datasets.
        held_out: sha256 -> where the evaluation copy is (``dataset/path``).

    Raises:
        ContaminationError: listing the first offending images.
    """
    leaks = [(dataset, record) for dataset, record in train if record.sha256 in held_out]
    if not leaks:
        return
    shown = "\n  ".join(f"{d.root / r.path} == {held_out[r.sha256]}" for d, r in leaks[:5])
    more = f"\n  ... and {len(leaks) - 5} more" if len(leaks) > 5 else ""
    raise ContaminationError(
        f"{len(leaks)} training image(s) are evaluation-only images (same sha256); training on "
        f"them would inflate every evaluation:\n  {shown}{more}")


def _weighted(records: list[ImageRecord], weight: float, seed: int) -> list[ImageRecord]:
    whole = int(weight)
    extra = round((weight - whole) * len(records))
    order = np.random.default_rng(seed).permutation(len(records))[:extra]
    return records * whole + [records[i] for i in sorted(order)]


def build_mix(sources: list[DataSource], out: Path, *, holdouts: list[Path] | None = None,
              seed: int = 0) -> DataMix:
    """Check the datasets and write the mix to ``out`` (replaced whole, never half-written).

    Args:
        sources: Datasets to train on; their ``train`` splits train, ``val`` splits validate.
        out: Folder for the symlinks, lists and ``data.yaml``.
        holdouts: More evaluation-only datasets no training image may come from.
        seed: Picks the images of fractional weights.

    Raises:
        DataMixError: a dataset that fails validation, an eval-only dataset given to train on,
            an empty mix.
        ContaminationError: a training image that is also an evaluation image.
    """
    if not sources:
        raise DataMixError("no dataset given to train on (--data)")
    datasets: list[tuple[DataSource, Dataset]] = []
    for source in sources:
        if is_eval_only(source.path):
            raise DataMixError(f"{source.path / DATA_YAML}: the dataset is marked eval_only; "
                               "it can evaluate a model but not train one")
        datasets.append((source, open_checked(source.path)))

    held_out: dict[str, str] = {}
    for _, dataset in datasets:
        for record in dataset.split("test"):
            held_out.setdefault(record.sha256, f"{dataset.root}/{record.path}")
    for root in holdouts or []:
        holdout = open_checked(root)
        for record in holdout.records:
            held_out.setdefault(record.sha256, f"{root}/{record.path}")
    train_pairs = [(d, r) for _, d in datasets for r in d.split("train")]
    check_contamination(train_pairs, held_out)

    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    summaries: list[SourceSummary] = []
    try:
        for index, (source, dataset) in enumerate(datasets):
            prefix = f"d{index}"
            train = dataset.split("train")
            val = dataset.split("val")
            used = _weighted(train, source.weight, seed + index)
            for split, records, listed in (("train", train, used), ("val", val, val)):
                for record in records:
                    link_record(dataset, record, staging / "images" / split,
                                f"{prefix}_{record.name}")
                lists[split] += [str(out / "images" / split / f"{prefix}_{r.name}")
                                 for r in listed]
            summaries.append(SourceSummary(
                path=str(source.path), weight=source.weight,
                fingerprint=manifest_fingerprint(dataset.root),
                train_images=len(train), val_images=len(val), train_used=len(used)))
        if not lists["train"]:
            raise DataMixError("no training images: none of the datasets has a train split "
                               "(streetwatch data split creates one)")
        if not lists["val"]:
            raise DataMixError("no validation images: give at least one dataset with a val "
                               "split (streetwatch data split DIR --val 0.1 --keep test)")
        for split, paths in lists.items():
            (staging / f"{split}.txt").write_text("\n".join(paths) + "\n", encoding="utf-8")
        content: dict[str, Any] = {
            "path": str(out), "train": "train.txt", "val": "val.txt",
            "names": TAXONOMY.names, "taxonomy_version": TAXONOMY.version}
        (staging / DATA_YAML).write_text(yaml.safe_dump(content, sort_keys=False),
                                         encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DataMix(data_yaml=out / DATA_YAML, sources=tuple(summaries),
                   train_images=len(lists["train"]), val_images=len(lists["val"]))


def link_record(dataset: Dataset, record: ImageRecord, images: Path, name: str) -> None:
    """Symlink a record's image as ``images/NAME`` and its label file (if any) beside it in
    the matching ``labels`` folder, where ultralytics looks for it."""
    image = images / name
    label = images.parent.parent / "labels" / images.name / Path(name).with_suffix(".txt")
    image.parent.mkdir(parents=True, exist_ok=True)
    label.parent.mkdir(parents=True, exist_ok=True)
    image.symlink_to(dataset.image_path(record).resolve())
    source_label = dataset.root / record.label_path
    if source_label.exists():
        label.symlink_to(source_label.resolve())
