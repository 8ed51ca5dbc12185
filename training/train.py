"""Train a detector with ultralytics on a mix of streetwatch datasets; resumable.

A run folder holds everything needed to understand and continue a run:

- ``command.txt``: every command that started or resumed it, with the time;
- ``run.json``: the config, the datasets with their manifest fingerprints, the state;
- ``data/``: the checked mix (see :mod:`streetwatch.training.datamix`);
- what ultralytics writes: ``weights/last.pt`` and ``best.pt`` (every epoch),
  ``results.csv``, ``args.yaml`` and plots.

Everything that can be checked is checked before the folder is created, so a bad input
leaves nothing behind; once training has started, the folder is a resumable run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streetwatch.models.files import ConfigFileError, atomic_write_text, read_mapping
from streetwatch.training.augment import street_augmentations
from streetwatch.training.config import TrainConfig
from streetwatch.training.datamix import DataMix, DataSource, build_mix
from streetwatch.training.precision import cpu_training, resolve, ultralytics_amp
from streetwatch.training.weights import WeightsError, check_weights

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
COMMAND_TXT = "command.txt"


class RunError(ValueError):
    """A run folder that cannot be started or resumed as asked."""


@dataclass(frozen=True)
class TrainResult:
    """A finished (or stopped-at-its-schedule) run."""

    run: Path
    best: Path
    last: Path
    epochs: int
    seconds: float
    seconds_per_epoch: float


def offline() -> None:
    """Make sure ultralytics never reaches for the network (set before importing it)."""
    os.environ["YOLO_OFFLINE"] = "1"


def train(
    sources: list[DataSource],
    config: TrainConfig,
    out: Path,
    *,
    command: str,
    holdouts: list[Path] | None = None,
    resume: bool = False,
    parent: str | None = None,
) -> TrainResult:
    """Start a run in ``out``, or resume the one there.

    Args:
        sources: Datasets to train on, with weights.
        config: The recipe.
        out: The run folder; it must not exist unless ``resume``.
        command: The command line, recorded in ``command.txt``.
        holdouts: Evaluation-only datasets that no training image may come from.
        resume: Continue the run in ``out`` from ``weights/last.pt``.
        parent: ``NAME:VERSION`` of the registered model ``config.model`` comes from;
            recorded in ``run.json`` and from there in the new model's card.

    Raises:
        RunError, DataMixError, ContaminationError, WeightsError: before anything is written.
    """
    out = out.resolve()
    if resume:
        previous = _read_run(out)
        last = out / "weights" / "last.pt"
        check_weights(last)
        if previous["config"] != config.model_dump(mode="json"):
            raise RunError(f"{out / RUN_JSON}: the run was started with another config; "
                           "resume it with the same one, or start a new run")
    else:
        if out.exists() and any(out.iterdir()):
            raise RunError(f"{out}: already holds a run; use --resume to continue it, "
                           "or another --out")
        if config.model.endswith(".pt"):
            check_weights(Path(config.model))
        elif not config.model.endswith((".yaml", ".yml")):
            raise WeightsError(f"{config.model}: the model must be a model YAML (yolo11n.yaml) "
                               "or a local .pt file")

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        mix = build_mix(sources, out / "data", holdouts=holdouts, seed=config.seed)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if resume and previous["data"] != [asdict(s) for s in mix.sources]:
        raise RunError(f"{out / RUN_JSON}: the datasets changed since the run started "
                       "(manifest fingerprints differ); start a new run")

    with (out / COMMAND_TXT).open("a", encoding="utf-8") as handle:
        handle.write(f"# {datetime.now(UTC).isoformat(timespec='seconds')}\n{command}\n")
    # A resumed run keeps the precision it started in: ultralytics takes ``amp`` from the
    # checkpoint.
    precision = previous.get("precision", "fp32") if resume else resolve(config.precision)
    if resume:
        parent = previous.get("parent")
    _write_run(out, config, mix, state="training", parent=parent, precision=precision)

    offline()
    from ultralytics.models import YOLO

    started = time.perf_counter()
    args: dict[str, Any] = {
        "data": str(mix.data_yaml), "epochs": config.epochs, "imgsz": config.imgsz,
        "batch": config.batch, "workers": config.workers, "seed": config.seed,
        "device": "cpu", "project": str(out.parent), "name": out.name, "exist_ok": True,
        "augmentations": street_augmentations(config.augment),
        "amp": ultralytics_amp(precision), **config.hyp,
    }
    model = YOLO(str(out / "weights" / "last.pt") if resume else config.model)
    # ultralytics trains on min(8, cores - 1) torch threads: one of this machine's two.
    threads = config.threads or os.cpu_count() or 1
    model.add_callback("on_pretrain_routine_end", lambda _trainer: _set_threads(threads))
    model.add_callback("on_train_start", lambda _trainer: _set_threads(threads))
    log.info("training on the CPU in %s, channels last", precision)
    with cpu_training(model):
        if resume:
            model.train(resume=True, **{k: args[k] for k in ("data", "workers", "augmentations")})
        else:
            model.train(**args)
    seconds = time.perf_counter() - started

    rows = results_rows(out)
    _write_run(out, config, mix, state="finished", parent=parent, precision=precision)
    result = TrainResult(
        run=out, best=out / "weights" / "best.pt", last=out / "weights" / "last.pt",
        epochs=len(rows), seconds=seconds, seconds_per_epoch=seconds_per_epoch(rows))
    (out / "result.json").write_text(json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()},
        indent=2) + "\n", encoding="utf-8")
    return result


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _read_run(out: Path) -> dict[str, Any]:
    path = out / RUN_JSON
    if not path.exists():
        raise RunError(f"{path}: missing; {out} is not a streetwatch run to resume")
    try:
        content = read_mapping(path, "run record")
    except ConfigFileError as exc:
        raise RunError(str(exc)) from None
    if "config" not in content or "data" not in content:
        raise RunError(f"{path}: not a streetwatch run record")
    return content


def _write_run(out: Path, config: TrainConfig, mix: DataMix, *, state: str,
               parent: str | None, precision: str) -> None:
    content = {
        "state": state,
        "parent": parent,
        "precision": precision,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "data": [asdict(s) for s in mix.sources],
        "train_images": mix.train_images,
        "val_images": mix.val_images,
    }
    atomic_write_text(out / RUN_JSON, json.dumps(content, indent=2) + "\n")


def results_rows(run: Path) -> list[dict[str, str]]:
    """The rows of ultralytics' ``results.csv`` in a run folder, one per finished epoch
    (its header pads names with spaces)."""
    import csv

    path = run / "results.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)]


def seconds_per_epoch(rows: list[dict[str, str]]) -> float:
    """Mean wall time per epoch from ultralytics' cumulative ``time`` column."""
    if not rows or "time" not in rows[-1]:
        return 0.0
    return float(rows[-1]["time"]) / len(rows)
