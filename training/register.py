"""Model cards for trained models: what the run folder knows, written into the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streetwatch.models.registry import (
    ClassMetrics,
    Evaluation,
    ModelCard,
    Registry,
    TrainingInfo,
    parse_ref,
)
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.training.train import COMMAND_TXT, RUN_JSON, results_rows


def training_info(weights: Path) -> tuple[TrainingInfo, str | None]:
    """What the run folder of ``RUN/weights/X.pt`` records, and the parent model if any."""
    run = weights.resolve().parent.parent
    path = run / RUN_JSON
    if not path.exists():
        return TrainingInfo(), None
    content = json.loads(path.read_text(encoding="utf-8"))
    commands = [line for line in (run / COMMAND_TXT).read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#")] if (run / COMMAND_TXT).exists() else []
    epochs, seconds = _progress(run)
    info = TrainingInfo(
        data={d["path"]: d["fingerprint"] for d in content.get("data", [])},
        epochs=epochs, seconds=seconds,
        command=commands[0] if commands else None,
        config=content.get("config", {}),
    )
    return info, content.get("parent")


def _progress(run: Path) -> tuple[int | None, float | None]:
    rows = results_rows(run)
    if not rows:
        return None, None
    return int(float(rows[-1]["epoch"])), float(rows[-1].get("time", 0) or 0)


def new_card(ref: str, weights: Path, imgsz: int, *, notes: str = "") -> ModelCard:
    """A card for a model trained in the run that holds ``weights`` (artefacts come later)."""
    name, version = parse_ref(ref)
    info, parent = training_info(weights)
    return ModelCard(
        name=name, version=version, created_at=datetime.now(UTC),
        taxonomy_version=TAXONOMY.version, classes=TAXONOMY.keys, imgsz=imgsz,
        artefacts={}, training=info, parent=parent, notes=notes,
    )


def evaluation_from_metrics(metrics: dict[str, Any], artefact: str) -> Evaluation:
    """A card's evaluation entry from an evaluation's ``metrics.json``."""
    data = metrics["data"]
    return Evaluation(
        data=data["path"], fingerprint=data["fingerprint"], split=data["split"],
        images=data["images"], artefact=artefact,
        classes={k: ClassMetrics(**v) for k, v in metrics["classes"].items()},
        all=ClassMetrics(**metrics["all"]),
        evaluated_at=datetime.fromisoformat(metrics["evaluated_at"]),
    )


def evaluation_key(metrics: dict[str, Any], artefact: str = "onnx") -> str:
    """``<dataset folder>/<split>``, with ``@<artefact>`` unless it is the served FP32 ONNX:
    how a card names an evaluation (the promotion gate compares equal keys)."""
    key = f"{Path(metrics['data']['path']).name}/{metrics['data']['split']}"
    return key if artefact == "onnx" else f"{key}@{artefact}"


def record_evaluation(registry: Registry, ref: str, metrics: dict[str, Any],
                      artefact: str) -> str:
    """Add an evaluation to a registered model's card; returns its key."""
    key = evaluation_key(metrics, artefact)
    registry.add_evaluation(ref, key, evaluation_from_metrics(metrics, artefact))
    return key
