"""Deterministic, group-aware, class-stratified train/val/test splitting.

Every group (a video, a camera-day, an original file) lands whole in one split, so frames of
one video never straddle train and test. Groups are placed greedily, rarest class first,
into the split whose quota for the group's classes is least filled *relative to its size*;
so a class present in at least three groups reaches train, val and test, and common classes
approach the requested fractions.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from streetwatch.datasets.format import (
    HELD_OUT_RANK,
    MANIFEST,
    SPLITS,
    Dataset,
    DatasetError,
    ImageRecord,
    label_path_for,
    write_manifest,
)

_IMAGES = "__images__"  # pseudo-class: the image count, so empty groups are balanced too


@dataclass(frozen=True)
class SplitPlan:
    """Which split each image goes to."""

    assignment: dict[str, str]  # image path -> split

    def moves(self, records: list[ImageRecord]) -> list[tuple[ImageRecord, str]]:
        """Records whose split changes, with their new split."""
        return [(r, self.assignment[r.path]) for r in records if self.assignment[r.path] != r.split]


def plan_split(
    dataset: Dataset,
    *,
    val: float,
    test: float,
    seed: int,
    keep: Collection[str] = (),
) -> SplitPlan:
    """Plan a split of ``dataset``.

    Args:
        dataset: The dataset; its labels give the classes of each group.
        val: Fraction of images for validation, 0..1.
        test: Fraction for test, 0..1.
        seed: Seeds the tie-breaking order; the same inputs give the same plan.
        keep: Splits whose current images stay where they are (e.g. ``{"test"}`` to keep a
            source's test set). A group with any image in a kept split goes there whole.

    Raises:
        DatasetError: for fractions outside 0..1 or summing to 1 or more, or an unknown split.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(f"--val {val} and --test {test} must be in 0..1 and sum below 1")
    for name in keep:
        if name not in SPLITS:
            raise DatasetError(f"--keep {name!r}: use one of {', '.join(SPLITS)}")
    fractions = {"train": 1 - val - test, "val": val, "test": test}

    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in dataset.records:
        groups[record.group].append(record)
    counts: dict[str, Counter[str]] = {}
    for name, records in groups.items():
        counter: Counter[str] = Counter({_IMAGES: len(records)})
        for record in records:
            counter.update(dataset.names[c] for c in dataset.labels(record).class_id)
        counts[name] = counter

    totals: Counter[str] = Counter()
    for counter in counts.values():
        totals.update(counter)
    quota = {s: {c: fractions[s] * n for c, n in totals.items()} for s in SPLITS}
    filled: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    chosen: dict[str, str] = {}

    def place(group: str, split: str) -> None:
        chosen[group] = split
        filled[split].update(counts[group])

    for group, records in sorted(groups.items()):
        kept = sorted({r.split for r in records if r.split in keep},
                      key=HELD_OUT_RANK.__getitem__)
        if kept:
            place(group, kept[0])

    rng = random.Random(seed)
    free = sorted(g for g in groups if g not in chosen)
    rng.shuffle(free)
    # Rarest class first: a group's rarity is the total count of its rarest class.
    free.sort(key=lambda g: min((totals[c] for c in counts[g] if c != _IMAGES),
                                default=totals[_IMAGES] + 1))
    candidates = [s for s in SPLITS if fractions[s] > 0]
    for group in free:
        scores = {s: (_need(counts[group], quota[s], filled[s]), fractions[s]) for s in candidates}
        place(group, max(candidates, key=scores.__getitem__))

    return SplitPlan({r.path: chosen[r.group] for r in dataset.records})


def _need(group: Counter[str], quota: dict[str, float], filled: Counter[str]) -> float:
    """How much a split still wants a group: the mean unfilled share of its classes' quotas."""
    shares = [(quota[c] - filled[c]) / quota[c] for c in group if quota[c] > 0]
    return sum(shares) / len(group) if shares else -1.0


def apply_split(dataset: Dataset, plan: SplitPlan) -> int:
    """Move image and label files to their planned split folders and rewrite the manifest.

    Each file moves by rename; if any move fails, the moves already made are undone and the
    manifest is left as it was.

    Returns:
        The number of images moved.
    """
    root = dataset.root
    moves = plan.moves(dataset.records)
    done: list[tuple[Path, Path]] = []
    try:
        for record, split in moves:
            new_path = f"images/{split}/{record.name}"
            for old, new in ((record.path, new_path),
                             (record.label_path, label_path_for(new_path))):
                source, target = root / old, root / new
                if not source.exists():
                    continue  # an image without a label file
                if target.exists():
                    raise DatasetError(f"{target}: already exists; cannot move {source} there")
                target.parent.mkdir(parents=True, exist_ok=True)
                source.rename(target)
                done.append((source, target))
        new_records = [
            r.model_copy(update={"split": plan.assignment[r.path],
                                 "path": f"images/{plan.assignment[r.path]}/{r.name}"})
            for r in dataset.records
        ]
        write_manifest(root / MANIFEST, new_records)
    except BaseException:
        for source, target in reversed(done):
            target.rename(source)
        raise
    dataset.records = new_records
    return len(moves)
