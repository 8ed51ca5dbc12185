"""Weight averaging ("model soup", Wortsman et al. 2022): one detector whose weights are
the weighted mean of several fine-tuned from the same start.

Detectors fine-tuned from one checkpoint stay in one basin of the loss, so the mean of
their weights is a model too, and often a better one than each: it costs one model's
inference, unlike an ensemble. The result is written as a run folder (``weights/best.pt``,
``run.json``, ``command.txt``) so that export, evaluation and the registry treat it like
any trained run: its card lists the union of the ingredients' training data, and
``run.json`` names each ingredient by path, sha256 and share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streetwatch.models.files import atomic_write_text, read_mapping, sha256_file, staged_directory
from streetwatch.training.datamix import Weighted, parse_weighted
from streetwatch.training.train import COMMAND_TXT, RUN_JSON, offline
from streetwatch.training.weights import check_weights

BEST = Path("weights") / "best.pt"


class AverageError(ValueError):
    """Checkpoints that cannot be averaged; names the file and what differs."""


@dataclass(frozen=True)
class Ingredient(Weighted):
    """One checkpoint of the average (``path``) and its share of the mean (``weight``)."""

    @classmethod
    def parse(cls, text: str) -> Ingredient:
        """``PATH`` or ``PATH:SHARE`` (a share is a number > 0)."""
        return cls(*parse_weighted(text, name="share", allow_zero=False, error=AverageError))


def average(ingredients: list[Ingredient], out: Path, *, command: str,
            parent: str | None = None) -> Path:
    """Write the weighted mean of ``ingredients`` as the run folder ``out``; returns its
    ``weights/best.pt``.

    Every ingredient must be a checkpoint in a run folder (``RUN/weights/X.pt`` beside
    ``RUN/run.json``), so that the average's training data is known, and all must share
    one architecture and class list. Floating-point tensors (weights and batch-norm
    statistics) are averaged in float32; integer ones (batch counters) are the first
    ingredient's.

    Raises:
        AverageError, WeightsError: before anything is written; ``out`` is written whole
            or not at all.
    """
    if len(ingredients) < 2:
        raise AverageError("give at least two checkpoints to average")
    if out.exists() and any(out.iterdir()):
        raise AverageError(f"{out}: already exists; choose another --out")
    records = [_run_record(item.path) for item in ingredients]
    data = _union_data(ingredients, records)

    offline()
    import torch

    total = sum(item.weight for item in ingredients)
    first = _load(ingredients[0].path)
    model = first["model"]
    names = dict(model.names)
    state = model.float().state_dict()
    mean = {key: value * (ingredients[0].weight / total)
            for key, value in state.items() if value.is_floating_point()}
    for item in ingredients[1:]:
        other = _load(item.path)["model"]
        if dict(other.names) != names:
            raise AverageError(f"{item.path}: classes {list(other.names.values())} differ "
                               f"from {ingredients[0].path}'s {list(names.values())}")
        theirs = other.float().state_dict()
        _check_same_shapes(ingredients[0].path, state, item.path, theirs)
        for key in mean:
            mean[key] += theirs[key] * (item.weight / total)
    state.update(mean)
    model.load_state_dict(state)
    checkpoint = {
        **{k: v for k, v in first.items() if k not in ("ema", "optimizer", "updates")},
        "model": model.half(), "ema": None, "optimizer": None, "updates": None,
        "epoch": -1, "best_fitness": None,
    }
    content = {
        "state": "finished",
        "parent": parent,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"average": [
            {"weights": str(item.path), "sha256": sha256_file(item.path),
             "share": item.weight / total, "parent": record.get("parent")}
            for item, record in zip(ingredients, records, strict=True)]},
        "data": data,
    }
    with staged_directory(out) as staging:
        (staging / BEST.parent).mkdir()
        torch.save(checkpoint, staging / BEST)
        atomic_write_text(staging / RUN_JSON, json.dumps(content, indent=2) + "\n")
        atomic_write_text(staging / COMMAND_TXT,
                          f"# {datetime.now(UTC).isoformat(timespec='seconds')}\n{command}\n")
    return out / BEST


def _run_record(weights: Path) -> dict[str, Any]:
    check_weights(weights)
    path = weights.resolve().parent.parent / RUN_JSON
    if not path.exists():
        raise AverageError(f"{weights}: not in a run folder ({path} is missing), so what it "
                           "was trained on is unknown; average the weights of training runs")
    content = read_mapping(path, "run record")
    if not isinstance(content.get("data"), list):
        raise AverageError(f"{path}: not a streetwatch run record (no 'data' list)")
    return content


def _union_data(ingredients: list[Ingredient],
                records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every dataset any ingredient trained on, once; a dataset path whose manifest differs
    between two runs makes the average's provenance ambiguous, so it is refused."""
    seen: dict[str, tuple[str, Path]] = {}
    union: list[dict[str, Any]] = []
    for item, record in zip(ingredients, records, strict=True):
        for entry in record["data"]:
            path, fingerprint = str(entry["path"]), str(entry["fingerprint"])
            if path in seen:
                if seen[path][0] != fingerprint:
                    raise AverageError(
                        f"{item.path}: trained on {path} with manifest {fingerprint[:12]}, "
                        f"{seen[path][1]} on {seen[path][0][:12]}: the dataset changed "
                        "between the runs")
                continue
            seen[path] = (fingerprint, item.path)
            union.append(entry)
    return union


def _load(weights: Path) -> dict[str, Any]:
    import torch

    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a file it cannot unpickle
        raise AverageError(f"{weights}: not a readable checkpoint ({exc})") from None
    if not isinstance(checkpoint, dict):
        raise AverageError(f"{weights}: not an ultralytics detector checkpoint")
    # a checkpoint taken mid-run keeps the averaged weights it validates in ``ema``
    model = checkpoint["ema"] if checkpoint.get("ema") is not None else checkpoint.get("model")
    if model is None or not hasattr(model, "names"):
        raise AverageError(f"{weights}: not an ultralytics detector checkpoint")
    checkpoint["model"] = model
    return dict(checkpoint)


def _check_same_shapes(first: Path, mine: dict[str, Any], other: Path,
                       theirs: dict[str, Any]) -> None:
    if mine.keys() != theirs.keys():
        missing = sorted(mine.keys() ^ theirs.keys())[0]
        raise AverageError(f"{other}: another architecture than {first} (layer {missing!r} "
                           "is in one only)")
    for key, value in mine.items():
        if value.shape != theirs[key].shape:
            raise AverageError(f"{other}: layer {key!r} has shape {tuple(theirs[key].shape)}, "
                               f"{first}'s {tuple(value.shape)}: another architecture")
