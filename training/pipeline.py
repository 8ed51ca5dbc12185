"""``streetwatch export`` as one step: ONNX, parity, INT8 with its speed and accuracy, and
registration, written all at once or not at all."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streetwatch.models.files import staged_directory
from streetwatch.models.registry import Registry
from streetwatch.training.datamix import manifest_fingerprint, open_checked
from streetwatch.training.evaluate import model_imgsz
from streetwatch.training.export import (
    PARITY_MAX_CONF_DELTA,
    PARITY_MIN_IOU,
    RAW_MAX_BOX_DELTA,
    RAW_MAX_SCORE_DELTA,
    ExportError,
    check_parity,
    export_onnx,
    measure_speed,
    quantize_int8,
    sample_images,
    strip_weights,
)
from streetwatch.training.register import evaluation_from_metrics, evaluation_key, new_card
from streetwatch.training.scoring import score_with_detector

PARITY_IMAGES = 8
SPEED_IMAGES = 16


def _check_split(data: Path) -> str:
    splits = {r.split for r in open_checked(data).records}
    for split in ("test", "val"):
        if split in splits:
            return split
    raise ExportError(f"{data}: no test or val split to measure INT8 accuracy on")


def _accuracy(models: dict[str, Path], data: Path,
              work: Path) -> dict[str, dict[str, Any]]:
    """Each ONNX model's metrics on ``data``'s test (else val) split through the serving
    detector, as ``metrics.json`` blocks."""
    split = _check_split(data)
    dataset = open_checked(data)
    records = dataset.split(split)
    results = {}
    for kind, path in models.items():
        (work / kind).mkdir(parents=True)
        scored = score_with_detector(path, dataset, records, work / kind)
        results[kind] = {
            **scored,
            "data": {"path": str(data), "split": split, "images": len(records),
                     "fingerprint": manifest_fingerprint(dataset.root)},
            "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    return results


def calibration_images(datasets: list[Path], count: int) -> list[Path]:
    """``count`` train and val images spread evenly over the datasets and within each."""
    if not datasets:
        raise ExportError("INT8 calibration needs images (--calib DATA)")
    chosen: list[Path] = []
    for index, root in enumerate(datasets):
        dataset = open_checked(root)
        pool = [r for r in dataset.records if r.split in ("train", "val")] or dataset.records
        share = count // len(datasets) + (index < count % len(datasets))
        step = max(1, len(pool) // max(1, share))
        chosen += [dataset.image_path(r) for r in pool[::step][:share]]
    return chosen


def run_export(weights: Path, out: Path, *, imgsz: int | None, check_data: Path, int8: bool,
               calib: list[Path], calib_images: int, ref: str | None, notes: str,
               registry: Registry | None, echo: Callable[[str], None]) -> dict[str, Any]:
    """Export, check and (optionally) register; returns what ``export.json`` holds."""
    size = imgsz or model_imgsz(weights)
    out = out.resolve()
    with staged_directory(out) as staging:
        stripped = strip_weights(weights, staging / "model.pt")
        onnx = export_onnx(stripped, staging / "model.onnx", imgsz=size)
        samples = sample_images(check_data, PARITY_IMAGES)
        parity = check_parity(stripped, onnx, samples, imgsz=size)
        echo(parity.summary())
        if not parity.ok:
            raise ExportError("the .onnx does not match the .pt:\n  "
                              + "\n  ".join(parity.problems[:10]))
        summary: dict[str, Any] = {
            "weights": str(weights.resolve()), "imgsz": size,
            "files": {"pt": str(out / stripped.name), "onnx": str(out / onnx.name)},
            "parity": {"images": parity.images, "detections": parity.detections,
                       "matched": parity.matched, "worst_iou": round(parity.worst_iou, 4),
                       "worst_conf_delta": round(parity.worst_conf_delta, 4),
                       "raw_box_delta_px": parity.raw_box_delta,
                       "raw_score_delta": parity.raw_score_delta,
                       "min_iou": PARITY_MIN_IOU, "max_conf_delta": PARITY_MAX_CONF_DELTA,
                       "raw_max_box_delta_px": RAW_MAX_BOX_DELTA,
                       "raw_max_score_delta": RAW_MAX_SCORE_DELTA},
        }
        accuracy: dict[str, dict[str, Any]] = {}
        if int8:
            chosen = calibration_images(calib, calib_images)
            quantized = quantize_int8(onnx, staging / "model.int8.onnx", chosen, imgsz=size)
            speed = measure_speed(onnx, quantized, sample_images(check_data, SPEED_IMAGES),
                                  imgsz=size)
            echo(speed.summary())
            with tempfile.TemporaryDirectory(prefix="sw-int8-") as tmp:
                accuracy = _accuracy({"onnx": onnx, "int8": quantized}, check_data, Path(tmp))
            deltas = {k: round(v["ap50"] - accuracy["onnx"]["classes"][k]["ap50"], 4)
                      for k, v in accuracy["int8"]["classes"].items()}
            echo("INT8 - FP32 AP50 per class: "
                 + ", ".join(f"{k} {d:+.3f}" for k, d in deltas.items()))
            summary["files"]["int8"] = str(out / quantized.name)
            summary["int8"] = {
                "calibration": {"data": [str(c) for c in calib], "images": len(chosen)},
                "speed": {"fp32_ms": round(speed.fp32_ms, 2), "int8_ms": round(speed.int8_ms, 2),
                          "speedup": round(speed.speedup, 3), "threads": speed.threads},
                "ap50_delta": deltas,
                "fp32": accuracy["onnx"], "int8": accuracy["int8"],
            }
        (staging / "export.json").write_text(json.dumps(summary, indent=2) + "\n",
                                             encoding="utf-8")

    if ref is not None and registry is not None:
        files = {"pt": out / "model.pt", "onnx": out / "model.onnx"}
        if int8:
            files["int8"] = out / "model.int8.onnx"
        card = registry.register(new_card(ref, weights, size, notes=notes), files)
        for kind, metrics in accuracy.items():
            if kind == "onnx":
                registry.add_evaluation(card.ref, evaluation_key(metrics),
                                        evaluation_from_metrics(metrics, kind))
        echo(f"registered {card.ref} in {registry.root}")
        summary["registered"] = card.ref
    return summary
