"""Scoring an ONNX model through the project's own detector, the code that serves it.

Predictions come from ``streetwatch.inference.Detector`` at ultralytics' validation
settings (confidence 0.001, NMS IoU 0.7, up to 300 boxes) plus the detector's own
suppression of boxes inside a more confident one of a composite class
(``class_contain``); matching and AP are ultralytics' (greedy matching by confidence at IoU
0.50:0.95, ``ap_per_class``), so the numbers compare with ``.pt`` evaluations while
measuring what production runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.format import Dataset, ImageRecord
from streetwatch.inference.boxes import pairwise_iou
from streetwatch.inference.detector import Detector, DetectorConfig
from streetwatch.inference.types import Detections
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.training.bootstrap import ImageScores

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
CONFUSION_CONF, CONFUSION_IOU = 0.25, 0.45


def match(pred_cls: npt.NDArray[np.int64], true_cls: npt.NDArray[np.int64],
          iou: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which predictions (in descending confidence) are correct at each IoU threshold:
    each claims the best unclaimed same-class target (ultralytics' greedy matching)."""
    correct = np.zeros((len(pred_cls), len(IOU_THRESHOLDS)), bool)
    if not len(pred_cls) or not len(true_cls):
        return correct
    iou = iou * (true_cls[:, None] == pred_cls[None])
    claimed = np.zeros((len(true_cls), len(IOU_THRESHOLDS)), bool)
    columns = range(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS.min()).any(0)):
        available = np.where(claimed, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, columns] >= IOU_THRESHOLDS
        claimed[k, columns] |= correct[j]
    return correct


def score_with_detector(
        model: Path, dataset: Dataset, records: list[ImageRecord], out: Path, *,
        operating: tuple[DetectorConfig, dict[Path, Detections]] | None = None,
        imgsz: int | None = None, per_image: list[ImageScores] | None = None,
) -> dict[str, Any]:
    """Per-class metrics of an ONNX model on ``records``; writes ``pr_curve.png`` and
    ``confusion_matrix.png`` to ``out``. With ``operating`` (a config and a dict), the dict
    is filled with each image's detections at that config too, from the same model run.
    ``imgsz`` runs the model at another input size than its metadata's (it is exported
    with dynamic height and width). ``per_image`` receives each record's scores, in
    order, for ``training.bootstrap``."""
    from ultralytics.utils.metrics import ap_per_class

    detector = Detector.open(model, config=DetectorConfig(conf=0.001, iou=0.7, max_det=300),
                             imgsz=imgsz)
    views = [detector] if operating is None else [detector,
                                                   detector.with_config(operating[0])]
    nc = len(TAXONOMY.keys)
    correct, conf, pred_cls, target_cls = [], [], [], []
    confusion = np.zeros((nc + 1, nc + 1), np.int64)  # [predicted, true]; last: background
    for record in records:
        image = cv2.imread(str(dataset.image_path(record)))
        if image is None:
            raise ValueError(f"{dataset.image_path(record)}: not a readable image")
        found, *at_operating = detector.detect_views(np.asarray(image, np.uint8), views)
        if operating is not None:
            operating[1][dataset.image_path(record)] = at_operating[0]
        order = np.argsort(-found.confidence)
        boxes, scores, classes = found.xyxy[order], found.confidence[order], found.class_id[order]
        labels = dataset.labels(record)
        truth = labels.xyxy_pixels(record.width, record.height)
        truth_cls = labels.class_id.astype(np.int64)
        iou = pairwise_iou(truth, boxes) if len(truth) and len(boxes) else np.zeros(
            (len(truth), len(boxes)))
        correct.append(match(classes, truth_cls, iou))
        if per_image is not None:
            per_image.append(ImageScores(scores.astype(np.float64), classes.astype(np.int64),
                                         correct[-1][:, 0].copy(), truth_cls))
        conf.append(scores)
        pred_cls.append(classes)
        target_cls.append(truth_cls)
        _confuse(confusion, classes[scores >= CONFUSION_CONF], truth_cls,
                 iou[:, scores >= CONFUSION_CONF], nc)
    tp = np.concatenate(correct) if correct else np.zeros((0, 10), bool)
    targets = np.concatenate(target_cls)
    result = ap_per_class(tp, np.concatenate(conf), np.concatenate(pred_cls), targets,
                          plot=True, save_dir=out, names=TAXONOMY.names, prefix="Box")
    _, _, p, r, _, ap, unique_classes = result[:7]
    counts = np.bincount(targets, minlength=nc)
    per_class = {}
    for index, class_id in enumerate(unique_classes):
        per_class[TAXONOMY.by_id(int(class_id)).key] = _block(
            p[index], r[index], ap[index, 0], ap[index].mean(), int(counts[int(class_id)]))
    found_any = len(unique_classes) > 0
    mean = [float(v.mean()) if found_any else 0.0 for v in (p, r, ap[:, 0], ap)]
    if (out / "BoxPR_curve.png").exists():
        (out / "BoxPR_curve.png").rename(out / "pr_curve.png")
    for extra in ("BoxF1_curve.png", "BoxP_curve.png", "BoxR_curve.png"):
        (out / extra).unlink(missing_ok=True)
    _plot_confusion(confusion, out / "confusion_matrix.png")
    return {"classes": per_class,
            "all": _block(mean[0], mean[1], mean[2], mean[3], int(counts.sum()))}


def _block(p: float, r: float, ap50: float, ap: float, instances: int) -> dict[str, Any]:
    return {"precision": round(float(p), 4), "recall": round(float(r), 4),
            "ap50": round(float(ap50), 4), "ap50_95": round(float(ap), 4),
            "instances": instances}


def _confuse(matrix: npt.NDArray[np.int64], pred: npt.NDArray[np.int64],
             truth: npt.NDArray[np.int64], iou: npt.NDArray[np.float64], nc: int) -> None:
    """Add one image: each target to the class of the prediction that covers it best."""
    used: set[int] = set()
    for t in np.argsort(-(iou.max(1) if iou.size else np.zeros(len(truth)))):
        candidates = [(iou[t, j], j) for j in range(len(pred))
                      if j not in used and iou[t, j] >= CONFUSION_IOU]
        if candidates:
            _, j = max(candidates)
            used.add(j)
            matrix[pred[j], truth[t]] += 1
        else:
            matrix[nc, truth[t]] += 1  # missed: predicted background
    for j in set(range(len(pred))) - used:
        matrix[pred[j], nc] += 1  # false alarm on background


def _plot_confusion(matrix: npt.NDArray[np.int64], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*TAXONOMY.keys, "background"]
    share = matrix / np.maximum(matrix.sum(0, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(8, 7))
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            axes.text(j, i, f"{share[i, j]:.2f}\n({value})", ha="center", va="center",
                      fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("true")
    axes.set_ylabel("predicted")
    axes.set_title(f"Confusion at confidence {CONFUSION_CONF}, IoU {CONFUSION_IOU} "
                   "(columns sum to 1)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
