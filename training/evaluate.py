"""Evaluate a detector on a streetwatch dataset split: metrics, plots, and a report of what
goes wrong, optionally against a baseline model.

``OUT`` receives ``metrics.json`` (per-class precision, recall, AP50, AP50-95, instances;
at the operating point, each class's false alarms and misses by kind: see ``FALSE_ALARM_KINDS``),
``confusion_matrix.png``, ``pr_curve.png``, ``report.md`` with example crops per class in
``examples/`` (true positives, false positives, misses), and with a baseline,
``baseline/metrics.json`` and per-class deltas in the report. It is written beside ``OUT``
and renamed into place, so a failed evaluation leaves nothing.

An ``.onnx`` model's AP50 comes with a 95 % interval (``uncertainty`` in metrics.json, a
bootstrap over the images: :mod:`streetwatch.training.bootstrap`), and against an ``.onnx``
baseline, so does each class's difference (``baseline_delta``): an interval that holds 0
says the two models cannot be told apart on this data.

AP is ultralytics' (COCO-style, 101-point interpolation). A ``.pt`` is scored by
ultralytics; an ``.onnx`` through the project's own detector, the code that serves it (see
:mod:`streetwatch.training.scoring`). The example counts use one operating point (``conf``,
IoU 0.5), the one a reviewer would see.

A feedback dataset exported from review decisions carries, in each manifest row's
``meta["rejected"]``, the boxes a model proposed and a reviewer rejected: a JSON list of
``[class_key, x1, y1, x2, y2]`` in pixels of that image (absent or ``"[]"`` when none). They
are background; ``metrics.json`` counts how many of them the evaluated model raises again (see
:func:`rejected_boxes`).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from streetwatch.datasets.format import DATA_YAML, Dataset, DatasetError, ImageRecord
from streetwatch.inference.boxes import box_iou, greedy_claims, pairwise_iou
from streetwatch.inference.detector import DetectorConfig
from streetwatch.inference.types import Detections
from streetwatch.models.files import sha256_file, staged_directory
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.training.bootstrap import DRAWS, LEVEL, ImageScores, Scored, intervals
from streetwatch.training.datamix import (
    DataMixError,
    link_record,
    manifest_fingerprint,
    open_checked,
)
from streetwatch.training.export import Arrays, predict_arrays
from streetwatch.training.scoring import score_with_detector
from streetwatch.training.train import offline
from streetwatch.training.weights import check_weights

MATCH_IOU = 0.5
KINDS = ("tp", "fp", "miss")
# What each error is, after TIDE (Bolya et al., 2020), at the operating point. A false alarm
# is a duplicate (on a true box of its class that another prediction already found), a poor
# box (on a true box of its class at IoU from LOOSE_IOU to MATCH_IOU: the object was seen,
# its extent was not), another class (on a true box of another class) or background. A miss
# was boxed loosely (a prediction of its class at IoU from LOOSE_IOU, matched elsewhere or
# not: among parked cars, often a neighbour's box), taken for another class (a prediction of
# another class at MATCH_IOU), or not seen at all.
FALSE_ALARM_KINDS = ("duplicate", "poor_box", "other_class", "background")
MISS_KINDS = ("poor_box", "other_class", "not_seen")
LOOSE_IOU = 0.1
# Bands of a true box's height as the model sees it (pixels of the letterboxed input): the
# recall in each shows whether a class is missed for its size or for what it is.
HEIGHT_BANDS = ((0, 16), (16, 32), (32, 64), (64, math.inf))


class EvalError(ValueError):
    """An evaluation that cannot run as asked."""


@dataclass
class _Example:
    kind: str
    class_key: str
    record: ImageRecord
    box: npt.NDArray[np.float64]
    confidence: float | None
    detail: str = ""


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    miss: int = 0
    examples: dict[str, list[_Example]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # heights of the true boxes, in model-input pixels: found, and missed
    found_heights: list[float] = field(default_factory=list)
    missed_heights: list[float] = field(default_factory=list)
    false_alarm_kinds: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(FALSE_ALARM_KINDS, 0))
    miss_kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MISS_KINDS, 0))

    def recall_by_height(self) -> dict[str, dict[str, float | int | None]]:
        bands: dict[str, dict[str, float | int | None]] = {}
        for low, high in HEIGHT_BANDS:
            found = sum(low <= h < high for h in self.found_heights)
            missed = sum(low <= h < high for h in self.missed_heights)
            name = f">={low:g}" if high == math.inf else f"{low:g}-{high:g}"
            bands[name] = {"instances": found + missed,
                           "recall": round(found / (found + missed), 4) if found + missed else None}
        return bands


def model_imgsz(model: Path) -> int:
    """The image size a model was trained or exported at."""
    if model.suffix == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False)
                .metadata_props}
        if "imgsz" not in meta:
            raise EvalError(f"{model}: no imgsz in its metadata; pass --imgsz")
        return int(yaml.safe_load(meta["imgsz"])[0])
    offline()
    from ultralytics.models import YOLO

    yolo: Any = YOLO(str(model))
    args = (getattr(yolo, "ckpt", None) or {}).get("train_args", {})
    return int(args.get("imgsz", 640))


def _check_model(model: Path) -> None:
    if model.suffix == ".pt":
        check_weights(model)
    elif model.suffix == ".onnx":
        if not model.is_file():
            raise EvalError(f"{model}: model file not found")
    else:
        raise EvalError(f"{model}: a model is a .pt or an .onnx file")


def _view(dataset: Dataset, records: list[ImageRecord], root: Path) -> Path:
    """A symlinked copy of one split for ultralytics (which writes label caches beside the
    labels: not into the user's dataset)."""
    for record in records:
        link_record(dataset, record, root / "images" / "eval", record.name)
    data_yaml = root / DATA_YAML
    data_yaml.write_text(yaml.safe_dump({"path": str(root), "train": "images/eval",
                                         "val": "images/eval", "names": TAXONOMY.names}),
                         encoding="utf-8")
    return data_yaml


def _metrics_block(values: tuple[float, ...], instances: int) -> dict[str, Any]:
    p, r, ap50, ap = (round(float(v), 4) for v in values)
    return {"precision": p, "recall": r, "ap50": ap50, "ap50_95": ap, "instances": instances}


def _score(model: Path, data_yaml: Path, work: Path, imgsz: int, batch: int) -> dict[str, Any]:
    offline()
    from ultralytics.models import YOLO

    yolo: Any = YOLO(str(model), task="detect")
    result = yolo.val(data=str(data_yaml), split="val", imgsz=imgsz, batch=batch, device="cpu",
                      plots=True, project=str(work), name="val", exist_ok=True, verbose=False)
    instances = np.asarray(result.nt_per_class, dtype=int)
    classes = {}
    for index, class_id in enumerate(result.ap_class_index):
        key = TAXONOMY.by_id(int(class_id)).key
        classes[key] = _metrics_block(tuple(result.class_result(index)),
                                      int(instances[int(class_id)]))
    return {"classes": classes,
            "all": _metrics_block(tuple(result.mean_results()), int(instances.sum())),
            "plots": Path(result.save_dir)}


Predict = Callable[[Path], Arrays]


def ultralytics_predictor(model: Path, imgsz: int, conf: float) -> Predict:
    """Detections of one image file through ultralytics (for a .pt; an .onnx is read
    through our detector, in the scoring pass: see ``_evaluate_one``)."""
    offline()
    from ultralytics.models import YOLO

    yolo: Any = YOLO(str(model), task="detect")
    return lambda path: predict_arrays(yolo, path, imgsz=imgsz, conf=conf, device="cpu",
                                       verbose=False)


def _arrays(seen: dict[Path, Detections], path: Path) -> Arrays:
    found = seen[path]
    return (found.xyxy.astype(np.float64), found.confidence.astype(np.float64),
            found.class_id.astype(np.int64))


@dataclass
class _Quiet:
    """False alarms on images without a violation: what reviewers would reject."""

    images: int = 0
    with_false_alarm: int = 0
    false_alarms: int = 0

    def summary(self) -> dict[str, Any]:
        per_image = self.false_alarms / self.images if self.images else 0.0
        return {"images": self.images, "with_false_alarm": self.with_false_alarm,
                "false_alarms": self.false_alarms,
                "false_alarms_per_image": round(per_image, 4)}


@dataclass
class _Rejected:
    """Reviewer-rejected false alarms (``meta["rejected"]``) that the model raises again: the
    reviewer's workload."""

    images: int = 0
    boxes: int = 0
    repeated: int = 0

    def summary(self) -> dict[str, Any]:
        rate = self.repeated / self.boxes if self.boxes else 0.0
        return {"images": self.images, "boxes": self.boxes, "repeated": self.repeated,
                "rate": round(rate, 4)}


_CASE_IDS = frozenset(c.id for c in TAXONOMY if c.can_be_case)
REJECTED_META = "rejected"


def rejected_boxes(record: ImageRecord) -> npt.NDArray[np.float64]:
    """The reviewer-rejected boxes of one manifest row, ``(N, 4)`` ``xyxy`` pixels clipped
    to the image (the class key each carries is not needed: any case class raising the box
    again counts).

    Raises:
        EvalError: naming the image and what is wrong with ``meta["rejected"]``.
    """
    text = record.meta.get(REJECTED_META)
    if text is None:
        return np.zeros((0, 4), np.float64)

    def bad(problem: str) -> EvalError:
        return EvalError(f"{record.path}: meta[{REJECTED_META!r}] {problem}")

    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"is not valid JSON ({exc.msg} at char {exc.pos}): {text[:80]!r}") from None
    if not isinstance(rows, list):
        raise bad(f"must be a JSON list of [class_key, x1, y1, x2, y2], not "
                  f"{type(rows).__name__}")
    boxes = []
    for n, row in enumerate(rows):
        if (not isinstance(row, list) or len(row) != 5 or not isinstance(row[0], str)
                or not row[0]
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in row[1:])):
            raise bad(f"entry {n} is {json.dumps(row)[:80]}, not [class_key, x1, y1, x2, y2]")
        x1, y1, x2, y2 = (float(v) for v in row[1:])
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise bad(f"entry {n} has a coordinate that is not finite")
        if not (x1 < x2 and y1 < y2):
            raise bad(f"entry {n} is an empty box (needs x1 < x2 and y1 < y2): "
                      f"{json.dumps(row)}")
        # A case's box may overhang the frame (a track's prediction): clip it, as the
        # detector clips its own; one with nothing inside is in some other image's pixels.
        x1, x2 = max(0.0, x1), min(float(record.width), x2)
        y1, y2 = max(0.0, y1), min(float(record.height), y2)
        if not (x1 < x2 and y1 < y2):
            raise bad(f"entry {n} {json.dumps(row)} lies outside the "
                      f"{record.width}x{record.height} image (pixels of that image expected)")
        boxes.append((x1, y1, x2, y2))
    return np.array(boxes, np.float64).reshape(-1, 4)


def _match(records: list[ImageRecord], dataset: Dataset, predict: Predict, conf: float,
           imgsz: int) -> tuple[dict[str, _Counts], _Quiet, _Rejected]:
    """Count TP, FP and misses per class at one operating point, keeping examples and the
    heights of the true boxes found and missed (at ``imgsz``, as the model sees them); the
    false alarms of case classes on images that show no violation; and the reviewer-rejected
    boxes that a case-class prediction at ``conf`` overlaps again (IoU >= ``MATCH_IOU``)."""
    counts = {key: _Counts() for key in TAXONOMY.keys}
    quiet = _Quiet()
    rejected = _Rejected()
    for record in records:
        boxes, scores, classes = predict(dataset.image_path(record))
        refused = rejected_boxes(record)
        if len(refused):
            raised = [boxes[i] for i in range(len(boxes))
                      if int(classes[i]) in _CASE_IDS and scores[i] >= conf]
            rejected.images += 1
            rejected.boxes += len(refused)
            rejected.repeated += sum(
                any(box_iou(alarm, box) >= MATCH_IOU for alarm in raised) for box in refused)
        labels = dataset.labels(record)
        truth = labels.xyxy_pixels(record.width, record.height)
        truth_cls = labels.class_id
        heights = (truth[:, 3] - truth[:, 1]) * imgsz / max(record.width, record.height)
        if not _CASE_IDS & {int(c) for c in truth_cls}:
            alarms = sum(int(c) in _CASE_IDS for c in classes)
            quiet.images += 1
            quiet.with_false_alarm += alarms > 0
            quiet.false_alarms += alarms
        used: set[int] = set()
        for i, found in greedy_claims(boxes, scores, classes, truth, truth_cls, MATCH_IOU):
            key = TAXONOMY.by_id(int(classes[i])).key
            if found is not None:
                used.add(found)
                counts[key].found_heights.append(float(heights[found]))
                counts[key].tp += 1
                counts[key].examples["tp"].append(
                    _Example("tp", key, record, boxes[i], float(scores[i])))
                continue
            kind, detail = _false_alarm(boxes[i], int(classes[i]), truth, truth_cls, used)
            counts[key].fp += 1
            counts[key].false_alarm_kinds[kind] += 1
            counts[key].examples["fp"].append(
                _Example("fp", key, record, boxes[i], float(scores[i]), detail))
        for j in set(range(len(truth))) - used:
            key = TAXONOMY.by_id(int(truth_cls[j])).key
            kind, detail = _miss(truth[j], int(truth_cls[j]), boxes, classes)
            counts[key].miss += 1
            counts[key].miss_kinds[kind] += 1
            counts[key].missed_heights.append(float(heights[j]))
            counts[key].examples["miss"].append(
                _Example("miss", key, record, truth[j], None, detail))
    return counts, quiet, rejected


def _false_alarm(box: npt.NDArray[Any], cls: int, truth: npt.NDArray[np.float64],
                 truth_cls: npt.NDArray[np.int64], used: set[int]) -> tuple[str, str]:
    """What an unmatched prediction is (one of FALSE_ALARM_KINDS), and a caption."""
    ious = pairwise_iou(np.asarray(box, np.float64).reshape(1, 4), truth)[0]
    found = np.isin(np.arange(len(truth)), list(used))
    if ((truth_cls == cls) & found & (ious >= MATCH_IOU)).any():
        return "duplicate", f"a second box on the found {TAXONOMY.by_id(cls).key}"
    kind, j = _overlap(ious, truth_cls, cls)
    if kind == "poor_box":
        return kind, f"poor box on the {TAXONOMY.by_id(cls).key} (IoU {ious[j]:.2f})"
    if kind == "other_class":
        return kind, f"on the {TAXONOMY.by_id(int(truth_cls[j])).key}"
    return "background", "background"


def _miss(true_box: npt.NDArray[np.float64], cls: int, boxes: npt.NDArray[Any],
          classes: npt.NDArray[Any]) -> tuple[str, str]:
    """Why a true box went unmatched (one of MISS_KINDS), and a caption."""
    ious = pairwise_iou(np.asarray(boxes, np.float64).reshape(-1, 4), true_box.reshape(1, 4))[:, 0]
    kind, j = _overlap(ious, classes.astype(np.int64), cls)
    if kind == "poor_box":
        return kind, f"boxed loosely (IoU {ious[j]:.2f})"
    if kind == "other_class":
        return kind, f"taken for {TAXONOMY.by_id(int(classes[j])).key}"
    return "not_seen", ""


def _overlap(ious: npt.NDArray[np.float64], classes: npt.NDArray[np.int64],
             cls: int) -> tuple[str | None, int]:
    """Given a box's IoU with each of several boxes and their classes: ``poor_box`` when one
    of class ``cls`` overlaps it at LOOSE_IOU or more, else ``other_class`` when one of
    another class does at MATCH_IOU, else None; with the index of the best such box."""
    own = classes == cls
    for kind, mask in (("poor_box", own & (ious >= LOOSE_IOU)),
                       ("other_class", ~own & (ious >= MATCH_IOU))):
        if mask.any():
            return kind, int(np.argmax(np.where(mask, ious, -1.0)))
    return None, -1


def _crop(dataset: Dataset, example: _Example, path: Path) -> None:
    image = cv2.imread(str(dataset.image_path(example.record)))
    if image is None:
        raise EvalError(f"{dataset.image_path(example.record)}: not a readable image")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in example.box)
    colour = {"tp": (60, 180, 60), "fp": (40, 40, 230), "miss": (0, 200, 255)}[example.kind]
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, max(1, round(max(w, h) / 400)))
    margin = max(x2 - x1, y2 - y1, 48)
    crop = image[max(0, y1 - margin):min(h, y2 + margin), max(0, x1 - margin):min(w, x2 + margin)]
    scale = 240 / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 85])


def _model_block(model: Path, imgsz: int) -> dict[str, Any]:
    return {"path": str(model), "sha256": sha256_file(model), "format": model.suffix[1:],
            "imgsz": imgsz}


def evaluate(model: Path, data: Path, out: Path, *, split: str = "test",
             baseline: Path | None = None, imgsz: int | None = None, batch: int = 16,
             conf: float = 0.25, examples: int = 3) -> dict[str, Any]:
    """Evaluate ``model`` (and ``baseline``) on ``data``'s ``split``; returns metrics.json.

    Raises:
        EvalError, DataMixError, WeightsError: bad model, dataset or split, or a malformed
            ``meta["rejected"]`` in a manifest row of the split, before ``out`` is touched.
    """
    _check_model(model)
    if baseline is not None:
        _check_model(baseline)
    try:
        dataset = open_checked(data)
    except (DataMixError, DatasetError) as exc:
        raise EvalError(str(exc)) from None
    records = dataset.split(split)
    if not records:
        have = sorted({r.split for r in dataset.records}) or ["none"]
        raise EvalError(f"{data}: no images in split {split!r} (it has: {', '.join(have)})")
    for record in records:  # a malformed feedback row fails here, before OUT is touched
        rejected_boxes(record)
    size = imgsz or model_imgsz(model)

    with staged_directory(out) as staging, tempfile.TemporaryDirectory(prefix="sw-eval-") as tmp:
        data_yaml = _view(dataset, records, Path(tmp) / "view")
        scores: list[ImageScores] = []
        metrics = _evaluate_one(model, dataset, records, data_yaml, Path(tmp) / "m", staging,
                                size, batch, conf, examples, data, split, scores)
        base = None
        if baseline is not None:
            base_size = imgsz or model_imgsz(baseline)
            (staging / "baseline").mkdir()
            base_scores: list[ImageScores] = []
            base = _evaluate_one(baseline, dataset, records, data_yaml, Path(tmp) / "b",
                                 staging / "baseline", base_size, batch, conf, 0, data, split,
                                 base_scores)
            if scores and base_scores:  # both scored per image: a paired interval
                nc = len(TAXONOMY.keys)
                metrics["baseline_delta"] = {
                    "baseline": str(baseline), "level": LEVEL, "draws": DRAWS,
                    "ap50": intervals(Scored(scores, nc), TAXONOMY.keys,
                                      baseline=Scored(base_scores, nc))}
                _write_metrics(staging, metrics)
        (staging / "report.md").write_text(_report(metrics, base), encoding="utf-8")
    return metrics


def _write_metrics(out: Path, metrics: dict[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def _evaluate_one(model: Path, dataset: Dataset, records: list[ImageRecord], data_yaml: Path,
                  work: Path, out: Path, imgsz: int, batch: int, conf: float, examples: int,
                  data: Path, split: str, scores: list[ImageScores]) -> dict[str, Any]:
    """One model's metrics.json in ``out``; an ``.onnx`` model's per-image scores are
    appended to ``scores`` (a ``.pt`` is scored by ultralytics, which keeps none)."""
    predict: Predict
    if model.suffix == ".onnx":  # one model run per image serves both passes
        seen: dict[Path, Detections] = {}
        scored = score_with_detector(model, dataset, records, out,
                                     operating=(DetectorConfig(conf=conf), seen), imgsz=imgsz,
                                     per_image=scores)
        scored["uncertainty"] = {
            "method": "percentile bootstrap over images", "level": LEVEL, "draws": DRAWS,
            "ap50": intervals(Scored(scores, len(TAXONOMY.keys)), TAXONOMY.keys)}
        predict = partial(_arrays, seen)
    else:
        scored = _score(model, data_yaml, work, imgsz, batch)
        plots: Path = scored.pop("plots")
        for source, target in (("confusion_matrix_normalized.png", "confusion_matrix.png"),
                               ("BoxPR_curve.png", "pr_curve.png")):
            if (plots / source).exists():
                shutil.copyfile(plots / source, out / target)
        predict = ultralytics_predictor(model, imgsz, conf)
    counts, quiet, rejected = _match(records, dataset, predict, conf, imgsz)
    if examples:
        (out / "examples").mkdir()
    shown: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, count in counts.items():
        shown[key] = {}
        for kind in KINDS:
            picked = sorted(count.examples[kind], key=lambda e: -(e.confidence or 0))[:examples]
            shown[key][kind] = []
            for n, example in enumerate(picked):
                name = f"examples/{key}_{kind}_{n}.jpg"
                _crop(dataset, example, out / name)
                shown[key][kind].append({"file": name, "image": example.record.path,
                                         "confidence": example.confidence,
                                         "detail": example.detail})
    metrics = {
        **scored,
        "operating_point": {
            "conf": conf, "iou": MATCH_IOU,
            "classes": {k: {"tp": c.tp, "fp": c.fp, "miss": c.miss} for k, c in counts.items()},
            "recall_by_height": {k: c.recall_by_height() for k, c in counts.items()},
            "errors": {k: {"false_alarms": c.false_alarm_kinds, "misses": c.miss_kinds}
                       for k, c in counts.items()},
            "violation_free_images": quiet.summary(),
            "rejected_false_alarms": rejected.summary(),
        },
        "model": _model_block(model, imgsz),
        "data": {"path": str(data), "split": split, "images": len(records),
                 "fingerprint": manifest_fingerprint(dataset.root)},
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "examples": shown,
    }
    _write_metrics(out, metrics)
    return metrics


def _ap_table(metrics: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    """Per class: AP and the counts at the operating point, with intervals and the
    baseline's AP50 when there are."""
    point = metrics["operating_point"]
    header = "| class | instances | precision | recall | AP50 | AP50-95 | TP | FP | missed |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    spread = metrics.get("uncertainty", {}).get("ap50", {})
    paired = metrics.get("baseline_delta", {}).get("ap50", {})
    if spread:
        header += " AP50 95 % interval |"
        rule += "---:|"
    if baseline:
        header += " baseline AP50 | ΔAP50 |"
        rule += "---:|---:|"
    if paired:
        header += " ΔAP50 95 % interval |"
        rule += "---:|"
    lines = [header, rule]
    for key in [*TAXONOMY.keys, "all"]:
        row = metrics["classes"].get(key) if key != "all" else metrics["all"]
        if row is None:
            continue
        c = point["classes"].get(key, {"tp": "", "fp": "", "miss": ""})
        if key == "all":
            c = {k: sum(v[k] for v in point["classes"].values()) for k in ("tp", "fp", "miss")}
        cells = (f"| {key} | {row['instances']} | {row['precision']:.3f} | {row['recall']:.3f} "
                 f"| {row['ap50']:.3f} | {row['ap50_95']:.3f} | {c['tp']} | {c['fp']} "
                 f"| {c['miss']} |")
        if spread:
            cells += f" {_interval(spread.get(key))} |"
        if baseline:
            other = baseline["all"] if key == "all" else baseline["classes"].get(key)
            if other is None:
                cells += " - | - |"
            else:
                cells += f" {other['ap50']:.3f} | {row['ap50'] - other['ap50']:+.3f} |"
        if paired:
            cells += f" {_interval(paired.get(key), signed=True)} |"
        lines.append(cells)
    if spread:
        lines += ["", "The intervals come from resampling the images (bootstrap, "
                  f"{metrics['uncertainty']['draws']} draws): a 95 % interval for what the model "
                  "scores on scenes drawn like these."
                  + (" A difference whose interval holds 0 is not shown by this data."
                     if paired else "")]
    return lines


def _interval(bounds: list[float] | None, *, signed: bool = False) -> str:
    if bounds is None:
        return "-"
    spec = "+.3f" if signed else ".3f"
    return f"{bounds[0]:{spec}} to {bounds[1]:{spec}}"


def _height_table(point: dict[str, Any]) -> list[str]:
    """Recall per class by true box height (model-input pixels), as recall (instances)."""
    by_height = point.get("recall_by_height")
    if not by_height:
        return []
    bands = list(next(iter(by_height.values())))
    lines = ["", "Recall by the true box's height in model-input pixels, recall (instances):",
             "", "| class | " + " | ".join(f"{b} px" for b in bands) + " |",
             "|---|" + "---:|" * len(bands)]
    for key, row in by_height.items():
        if not any(cell["instances"] for cell in row.values()):
            continue
        lines.append(f"| {key} | " + " | ".join(
            "-" if cell["recall"] is None else f"{cell['recall']:.2f} ({cell['instances']})"
            for cell in row.values()) + " |")
    return lines


def _errors_table(point: dict[str, Any]) -> list[str]:
    """Each class's false alarms and misses by kind (see FALSE_ALARM_KINDS, MISS_KINDS)."""
    errors = point.get("errors")
    if not errors:
        return []
    names = {"duplicate": "duplicate", "poor_box": "poor box", "other_class": "other class",
             "background": "background", "not_seen": "not seen"}
    lines = ["", "What the errors are: a false alarm is a duplicate, a poor box (on a true "
             f"box of its class at IoU {LOOSE_IOU:g}-{MATCH_IOU:g}: seen, wrongly boxed), on "
             "another class's box, or on background; a miss was boxed poorly, taken for "
             "another class, or not seen.", "",
             "| class | " + " | ".join(f"FP {names[k]}" for k in FALSE_ALARM_KINDS) + " | "
             + " | ".join(f"miss {names[k]}" for k in MISS_KINDS) + " |",
             "|---|" + "---:|" * (len(FALSE_ALARM_KINDS) + len(MISS_KINDS))]
    for key, row in errors.items():
        cells = [row["false_alarms"][k] for k in FALSE_ALARM_KINDS] + \
                [row["misses"][k] for k in MISS_KINDS]
        if any(cells):
            lines.append(f"| {key} | " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _report(metrics: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    data, model = metrics["data"], metrics["model"]
    lines = [
        "# Evaluation report", "",
        f"- model: `{model['path']}` ({model['format']}, {model['imgsz']} px, "
        f"sha256 `{model['sha256'][:12]}`)",
        f"- data: `{data['path']}` split `{data['split']}`, {data['images']} images "
        f"(manifest `{data['fingerprint'][:12]}`)",
    ]
    if baseline:
        lines.append(f"- baseline: `{baseline['model']['path']}`")
    point = metrics["operating_point"]
    lines += ["", f"Counts are at confidence >= {point['conf']} and IoU >= {point['iou']}.", ""]
    lines += _ap_table(metrics, baseline)
    lines += _height_table(point)
    lines += _errors_table(point)
    quiet = point["violation_free_images"]
    lines += ["", f"On the {quiet['images']} images without a violation, "
              f"{quiet['with_false_alarm']} got a false alarm of a case class "
              f"({quiet['false_alarms']} in all, {quiet['false_alarms_per_image']:.3f} per "
              "image): each is a candidate a reviewer rejects."]
    refused = point["rejected_false_alarms"]
    if refused["boxes"]:
        sentence = (f"Of the {refused['boxes']} false alarms reviewers rejected (on "
                    f"{refused['images']} images), this model raises {refused['repeated']} "
                    f"again (rate {refused['rate']:.4f})")
        before = baseline["operating_point"].get("rejected_false_alarms") if baseline else None
        if before is not None:
            sentence += (f"; the baseline raises {before['repeated']} "
                         f"(rate {before['rate']:.4f})")
        lines += ["", sentence + "."]
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![PR curves](pr_curve.png)"]
    lines += _examples_section(metrics)
    return "\n".join(lines) + "\n"


def _examples_section(metrics: dict[str, Any]) -> list[str]:
    """The report's crops, per class and kind, with how many of each there were."""
    lines: list[str] = []
    titles = {"tp": "found", "fp": "false alarms", "miss": "missed"}
    for key, kinds in metrics["examples"].items():
        if not any(kinds.values()):
            continue
        lines += ["", f"## {key}", ""]
        counted = metrics["operating_point"]["classes"][key]
        for kind in KINDS:
            if kinds[kind]:
                total = counted[kind]
                lines.append(f"**{titles[kind]}** ({len(kinds[kind])} of {total}"
                             f"{', most confident first' if kind != 'miss' else ''})")
                lines.append("")
                for e in kinds[kind]:
                    caption = e["image"] + (f" ({e['confidence']:.2f})" if e["confidence"] else "")
                    if e["detail"]:
                        caption += f", {e['detail']}"
                    lines.append(f"![{caption}]({e['file']}) ")
                lines.append("")
    return lines
