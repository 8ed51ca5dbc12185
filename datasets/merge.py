"""Several streetwatch datasets as one, e.g. a reference evaluation set made of a synthetic
held-out set and the held-out slice of a feedback dataset.

Each source gets a short tag (``s0``, ``s1``... in the order given) that prefixes its image
names and groups in the merged dataset, so names stay unique and groups of different sources
never merge. Every manifest row keeps its split, source and meta, and gains
``merged_from`` (the source folder's name) and ``merged_path`` (the image's path inside it):
enough to trace each image back. No absolute path is recorded, so the same merge made in
another place has the same manifest, hence the same fingerprint (evaluations recorded on
model cards stay comparable).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streetwatch.datasets.format import (
    DATA_YAML,
    EVAL_ONLY_KEY,
    SPLITS,
    Dataset,
    DatasetError,
    DatasetWriter,
    ImageRecord,
)
from streetwatch.datasets.images import ImageFileError
from streetwatch.datasets.labels import LabelFileError
from streetwatch.models.taxonomy import TAXONOMY

# Meta keys added to every merged row.
MERGED_FROM = "merged_from"
MERGED_PATH = "merged_path"


@dataclass(frozen=True)
class MergeItem:
    """One source image chosen for the merge, with its dataset and the source's tag."""

    dataset: Dataset
    tag: str
    record: ImageRecord


def source_tag(index: int) -> str:
    """The prefix of the ``index``-th source's image names and groups: ``s0``, ``s1``..."""
    return f"s{index}"


def merge_datasets(
    sources: list[Path],
    out: Path,
    *,
    splits: Collection[str] | None = None,
    eval_only: bool = False,
    overwrite: bool = False,
    progress: Callable[[list[MergeItem]], Iterable[MergeItem]] = lambda items: items,
) -> Dataset:
    """Write the chosen splits of several datasets as one dataset at ``out``.

    Images are copied byte for byte and their boxes unchanged; each row keeps its split,
    source and meta. Image names and groups get the source's tag (``s0_a.jpg``, group
    ``s0_video-3``) and the meta gains ``merged_from`` and ``merged_path``.
    The dataset is written through :class:`DatasetWriter`: on any error nothing is left at
    ``out``.

    Args:
        sources: Dataset folders, in order; the first is tagged ``s0``.
        out: Destination folder.
        splits: Splits to keep (``train``, ``val``, ``test``); every split when None.
        eval_only: Mark the merged dataset evaluation-only in ``data.yaml``
            (``eval_only: true``), so that training refuses it.
        overwrite: Replace an existing ``out`` once the merged dataset is complete.
        progress: Wraps the list of images to copy (a progress bar).

    Returns:
        The merged dataset, as opened from ``out``.

    Raises:
        DatasetError: a source that cannot be opened, whose class names are not the
            taxonomy's keys, or whose image or label file cannot be read; a source given twice
            or holding ``out``; an unknown split; a merge that selects no image; the same
            image (sha256) selected into two different splits; an existing ``out`` without
            ``overwrite``.
    """
    if not sources:
        raise DatasetError("no dataset given to merge")
    chosen = _check_splits(splits)
    _check_paths(sources, out)

    selected: list[MergeItem] = []
    for index, source in enumerate(sources):
        dataset = _open_source(source)
        tag = source_tag(index)
        selected += [MergeItem(dataset, tag, r) for r in dataset.records if r.split in chosen]
    if not selected:
        raise DatasetError(
            f"no image in split(s) {', '.join(s for s in SPLITS if s in chosen)} of "
            f"{', '.join(str(s) for s in sources)}: nothing to merge")
    _check_leaks(selected)

    extra: dict[str, Any] = {EVAL_ONLY_KEY: True} if eval_only else {}
    with DatasetWriter(out, overwrite=overwrite, extra_yaml=extra) as writer:
        for item in progress(selected):
            dataset, record = item.dataset, item.record
            where = dataset.image_path(record)
            try:
                data = where.read_bytes()
                labels = dataset.labels(record)
            except OSError as exc:
                raise DatasetError(f"{where}: cannot read ({exc.strerror or exc})") from None
            except LabelFileError as exc:
                raise DatasetError(str(exc)) from None
            meta = {
                **record.meta,
                MERGED_FROM: dataset.root.name,
                MERGED_PATH: record.path,
            }
            try:
                writer.add(data, name=f"{item.tag}_{record.name}", split=record.split,
                           labels=labels, source=record.source,
                           group=f"{item.tag}_{record.group}", meta=meta)
            except ImageFileError as exc:
                raise DatasetError(f"{where}: {exc.reason}") from None
            except DatasetError as exc:
                raise DatasetError(f"{dataset.root}: {exc}") from None
    return Dataset.open(out)


def _check_splits(splits: Collection[str] | None) -> set[str]:
    if splits is None:
        return set(SPLITS)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise DatasetError(f"unknown split(s) {', '.join(unknown)}; "
                           f"choose from {', '.join(SPLITS)}")
    if not splits:
        raise DatasetError("no split chosen; leave splits out to merge every split")
    return set(splits)


def _check_paths(sources: list[Path], out: Path) -> None:
    """Refuse a source given twice, and an ``out`` that is or holds a source (``overwrite``
    would delete it)."""
    target = Path(out).resolve()
    seen: dict[Path, Path] = {}
    for source in sources:
        resolved = Path(source).resolve()
        if resolved in seen:
            raise DatasetError(f"{source}: given twice (also as {seen[resolved]})")
        seen[resolved] = source
        if resolved.is_relative_to(target):
            raise DatasetError(f"--out {out} would replace the source {source}; "
                               "choose another --out")


def _open_source(source: Path) -> Dataset:
    try:
        dataset = Dataset.open(source)
    except DatasetError as exc:
        raise DatasetError(f"cannot merge {source}: {exc}") from None
    if dataset.names != TAXONOMY.keys:
        raise DatasetError(
            f"{Path(source) / DATA_YAML}: names {dataset.names} differ from the streetwatch "
            f"taxonomy v{TAXONOMY.version} {TAXONOMY.keys}; import the data with a --map "
            "to convert it before merging")
    return dataset


def _check_leaks(selected: list[MergeItem]) -> None:
    """Refuse one image (by sha256) in two different splits of the merge: evaluation would
    score images the model trained on, and ``data validate`` would fail the result."""
    first: dict[str, MergeItem] = {}
    leaks: list[str] = []
    for item in selected:
        earlier = first.setdefault(item.record.sha256, item)
        if earlier.record.split != item.record.split:
            leaks.append(
                f"{item.dataset.root / item.record.path} ({item.record.split}) == "
                f"{earlier.dataset.root / earlier.record.path} ({earlier.record.split})")
    if leaks:
        shown = "\n  ".join(leaks[:5])
        more = f"\n  ... and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        raise DatasetError(
            f"{len(leaks)} image(s) would be in two splits of the merged dataset (same "
            f"sha256); merge fewer splits (--split) or fix the sources:\n  {shown}{more}")
