"""ONNX export with a parity check, and INT8 static quantization with onnxruntime.

Export goes through ultralytics (which simplifies the graph with onnxslim). Parity is then
checked at the level a user sees, detections: on sample images the .pt and the .onnx must
find the same objects, each matched with the same class, box IoU of at least
``PARITY_MIN_IOU`` and confidence within ``PARITY_MAX_CONF_DELTA``. Detections whose
confidence lies within that delta of the threshold may appear on one side only.

After export the head's DFL decoding is rewritten (:func:`last_axis_dfl`) so that its
softmax runs over the last axis: the same numbers, 5 % less time per frame.

INT8 uses onnxruntime's static QDQ quantization, calibrated on dataset images letterboxed
exactly as the detector feeds them. The detection head's decoding (DFL softmax, box
arithmetic, class sigmoid, concatenation of coordinates in pixels with scores in 0..1) stays
in float: one scale for both would wipe out the scores. Everything before it is quantized,
the head's box and class branches (``cv2.*``, ``cv3.*``: convolutions and their SiLUs)
included: with those SiLUs in float, each of the head's 15 activations paid a dequantize and
a quantize, and INT8 ran 3-19 % slower (three interleaved runs, AVX512-VNNI, 2 threads).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.format import Dataset
from streetwatch.inference.boxes import box_iou
from streetwatch.inference.detector import letterbox, to_tensor
from streetwatch.training.train import offline
from streetwatch.training.weights import check_weights

log = logging.getLogger(__name__)

PARITY_MIN_IOU = 0.95
PARITY_MAX_CONF_DELTA = 0.02
PARITY_CONF = 0.25
# The raw outputs (before NMS) on the same input tensor: box coordinates in input pixels,
# class scores in 0..1. Fusing convolution and batch norm on export moves them by ~1e-4.
RAW_MAX_BOX_DELTA = 0.5
RAW_MAX_SCORE_DELTA = 0.005


class ExportError(ValueError):
    """An export that failed or did not match its source model."""


@dataclass(frozen=True)
class ParityReport:
    """How the .pt and the .onnx compared on sample images."""

    images: int
    detections: int
    matched: int
    worst_iou: float
    worst_conf_delta: float
    raw_box_delta: float
    raw_score_delta: float
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (f"parity {verdict}: {self.matched}/{self.detections} detections matched on "
                f"{self.images} images; worst IoU {self.worst_iou:.4f} (min {PARITY_MIN_IOU}), "
                f"worst confidence delta {self.worst_conf_delta:.4f} "
                f"(max {PARITY_MAX_CONF_DELTA}); raw outputs: box {self.raw_box_delta:.2g} px "
                f"(max {RAW_MAX_BOX_DELTA}), score {self.raw_score_delta:.2g} "
                f"(max {RAW_MAX_SCORE_DELTA})")


def strip_weights(weights: Path, out: Path) -> Path:
    """A copy of ``weights`` with only the model (half precision, no optimizer, no EMA
    buffers): what ships and what fine-tuning starts from; a checkpoint taken mid-run is
    five times larger."""
    check_weights(weights)
    offline()
    from ultralytics.utils.torch_utils import strip_optimizer

    if not strip_optimizer(weights, str(out)):
        raise ExportError(f"{weights}: not an ultralytics checkpoint")
    return out


def export_onnx(weights: Path, out: Path, *, imgsz: int) -> Path:
    """Export ``weights`` to ``out`` (an .onnx path) with a dynamic batch size."""
    check_weights(weights)
    offline()
    from ultralytics.models import YOLO

    with tempfile.TemporaryDirectory(prefix="sw-export-") as tmp:
        copy = Path(tmp) / "model.pt"
        shutil.copyfile(weights, copy)  # ultralytics writes the .onnx beside its input
        exported = Path(YOLO(str(copy)).export(format="onnx", imgsz=imgsz, simplify=True,
                                              dynamic=True, batch=1, device="cpu"))
        last_axis_dfl(exported)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(exported, out)
    return out


def last_axis_dfl(path: Path) -> bool:
    """Rewrite the DFL decoding of a YOLO head in the .onnx at ``path``, in place, so its
    softmax runs over the last axis; True when there was one to rewrite.

    ultralytics exports ``Reshape(b, 4, 16, A) -> Transpose(0, 2, 1, 3) -> Softmax(axis=1)
    -> Conv(16 -> 1, weights 0..15)``. onnxruntime's CPU softmax over an inner axis
    transposes around a slow kernel: a tenth of the FP32 model's time at 640x384, and
    INT8 keeps the head in float, so there it costs the same. ``Transpose(0, 1, 3, 2) ->
    Softmax(axis=3) -> MatMul(16 x 1)`` computes the same expectation into the same element
    order (the following Reshape is unchanged), and the outputs are bit-identical."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    softmax = next((n for n in graph.node if n.op_type == "Softmax" and "/dfl/" in n.name), None)
    if softmax is None:
        return False
    transpose = producer.get(softmax.input[0])
    conv = next((n for n in graph.node if softmax.output[0] in n.input), None)
    weights = {i.name: i for i in graph.initializer}
    if (transpose is None or transpose.op_type != "Transpose" or conv is None
            or conv.op_type != "Conv" or conv.input[1] not in weights
            or [a.ints for a in transpose.attribute if a.name == "perm"] != [[0, 2, 1, 3]]
            or [a.i for a in softmax.attribute if a.name == "axis"] != [1]):
        return False
    kernel = numpy_helper.to_array(weights[conv.input[1]])
    for attribute in transpose.attribute:
        if attribute.name == "perm":
            attribute.ints[:] = [0, 1, 3, 2]
    for attribute in softmax.attribute:
        if attribute.name == "axis":
            attribute.i = 3
    graph.initializer.remove(weights[conv.input[1]])
    graph.initializer.append(numpy_helper.from_array(
        kernel.reshape(-1, 1).astype(np.float32), conv.input[1]))
    matmul = helper.make_node("MatMul", [softmax.output[0], conv.input[1]], list(conv.output),
                              name=conv.name.removesuffix("Conv") + "MatMul")
    position = list(graph.node).index(conv)
    graph.node.remove(conv)
    graph.node.insert(position, matmul)
    # shapes recorded for the old layout would contradict the new one
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return True


def sample_images(data: Path, count: int, split: str | None = None) -> list[Path]:
    """Up to ``count`` image paths of a dataset, spread evenly over it."""
    dataset = Dataset.open(data)
    records = dataset.split(split) if split else dataset.records
    if not records:
        raise ExportError(f"{data}: no images{f' in split {split!r}' if split else ''}")
    step = max(1, len(records) // count)
    return [dataset.image_path(r) for r in records[::step][:count]]


def check_parity(weights: Path, onnx: Path, images: list[Path], *, imgsz: int) -> ParityReport:
    """Compare the detections of the .pt and the .onnx on ``images``."""
    offline()
    from ultralytics.models import YOLO

    kwargs: dict[str, Any] = {"imgsz": imgsz, "conf": PARITY_CONF - PARITY_MAX_CONF_DELTA,
                              "device": "cpu", "verbose": False}
    torch_model: Any = YOLO(str(weights))
    onnx_model: Any = YOLO(str(onnx), task="detect")
    problems: list[str] = []
    detections = matched = 0
    worst_iou, worst_conf = 1.0, 0.0
    for path in images:
        boxes_a, conf_a, cls_a = predict_arrays(torch_model, path, **kwargs)
        boxes_b, conf_b, cls_b = predict_arrays(onnx_model, path, **kwargs)
        used: set[int] = set()
        for i in range(len(boxes_a)):
            strong = conf_a[i] >= PARITY_CONF
            detections += int(strong)
            candidates = [j for j in range(len(boxes_b)) if cls_b[j] == cls_a[i] and j not in used]
            ious = [box_iou(boxes_a[i], boxes_b[j]) for j in candidates]
            if ious and max(ious) >= 0.5:
                j = candidates[int(np.argmax(ious))]
                used.add(j)
                iou, delta = max(ious), abs(float(conf_a[i] - conf_b[j]))
                if strong:
                    matched += 1
                    worst_iou, worst_conf = min(worst_iou, iou), max(worst_conf, delta)
                if iou < PARITY_MIN_IOU or delta > PARITY_MAX_CONF_DELTA:
                    problems.append(f"{path.name}: class {int(cls_a[i])} box IoU {iou:.3f}, "
                                    f"confidence {conf_a[i]:.3f} vs {conf_b[j]:.3f}")
            elif strong:
                problems.append(f"{path.name}: the .pt finds class {int(cls_a[i])} at "
                                f"{np.round(boxes_a[i]).tolist()} ({conf_a[i]:.3f}); the "
                                ".onnx does not")
        for j in set(range(len(boxes_b))) - used:
            if conf_b[j] >= PARITY_CONF + PARITY_MAX_CONF_DELTA:
                problems.append(f"{path.name}: the .onnx finds class {int(cls_b[j])} at "
                                f"{np.round(boxes_b[j]).tolist()} ({conf_b[j]:.3f}); the .pt "
                                "does not")
    box_delta, score_delta = _raw_deltas(torch_model, onnx, images, imgsz)
    if box_delta > RAW_MAX_BOX_DELTA or score_delta > RAW_MAX_SCORE_DELTA:
        problems.append(f"raw outputs differ: boxes by up to {box_delta:.3g} px, scores by up "
                        f"to {score_delta:.3g}")
    return ParityReport(len(images), detections, matched, worst_iou, worst_conf, box_delta,
                        score_delta, tuple(problems))


def _raw_deltas(torch_model: Any, onnx: Path, images: list[Path],
                imgsz: int) -> tuple[float, float]:
    """Largest differences of the raw (pre-NMS) outputs on identical input tensors."""
    import onnxruntime as ort
    import torch

    network = torch_model.model.float().eval()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    box_delta = score_delta = 0.0
    for path in images:
        tensor = letterbox_tensor(_read(path), imgsz)
        with torch.no_grad():
            expected = network(torch.from_numpy(tensor))
        expected = expected[0] if isinstance(expected, (list, tuple)) else expected
        actual = session.run(None, {"images": tensor})[0]
        diff = np.abs(expected.numpy() - actual)
        box_delta = max(box_delta, float(diff[:, :4].max()))
        score_delta = max(score_delta, float(diff[:, 4:].max()))
    return box_delta, score_delta


Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]


def predict_arrays(yolo: Any, image: Path, **kwargs: Any) -> Arrays:
    """One image through an ultralytics model: ``xyxy`` pixels, confidences, class ids."""
    boxes = yolo.predict(str(image), **kwargs)[0].boxes
    return (boxes.xyxy.numpy().astype(np.float64), boxes.conf.numpy().astype(np.float64),
            boxes.cls.numpy().astype(np.int64))


def letterbox_tensor(image: npt.NDArray[np.uint8], imgsz: int) -> npt.NDArray[np.float32]:
    """A BGR image as the model's input tensor, exactly as the detector prepares it."""
    return to_tensor([letterbox(image, imgsz)[0]])


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"{path}: not a readable image")
    return np.asarray(image, np.uint8)


HEAD_BRANCHES = ("cv2.", "cv3.")  # the head's box and class branches: plain conv stacks


def _float_head_nodes(model_path: Path) -> list[str]:
    """Nodes of the detection head's decoding, which INT8 would ruin (see module doc): all
    of the head's nodes (the last conv's module, ``/model.23/...`` in yolo11) outside its
    conv branches, and the DFL."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    head = convs[-1].name.split("/")[1] if convs and convs[-1].name.count("/") >= 2 else None
    keep_float = []
    for node in graph.node:
        parts = node.name.split("/")
        in_head = head is not None and parts[1:2] == [head]
        in_branch = len(parts) > 3 and parts[2].startswith(HEAD_BRANCHES)
        if (in_head and not in_branch) or "/dfl/" in node.name:
            keep_float.append(node.name)
    return keep_float


def quantize_int8(fp32: Path, out: Path, calib_images: list[Path], *, imgsz: int) -> Path:
    """Static QDQ INT8 quantization calibrated on ``calib_images``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calib_images:
        raise ExportError("INT8 calibration needs images (--calib DATA)")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.images: Iterator[Path] = iter(calib_images)

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            path = next(self.images, None)
            return None if path is None else {"images": letterbox_tensor(_read(path), imgsz)}

    with tempfile.TemporaryDirectory(prefix="sw-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        staged = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared), str(staged), Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=_float_head_nodes(prepared),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, out)
    return out


@dataclass(frozen=True)
class SpeedReport:
    """Milliseconds per image of two ONNX models, measured alternately in one run."""

    fp32_ms: float
    int8_ms: float
    threads: int
    batch: int

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms

    def summary(self) -> str:
        return (f"onnxruntime, {self.threads} threads, batch {self.batch}: FP32 "
                f"{self.fp32_ms:.1f} ms/img, INT8 {self.int8_ms:.1f} ms/img, "
                f"{self.speedup:.2f}x")


def measure_speed(fp32: Path, int8: Path, images: list[Path], *, imgsz: int, threads: int = 2,
                  rounds: int = 5) -> SpeedReport:
    """Time both models on the same inputs, alternating rounds so both see the same load."""
    import onnxruntime as ort

    def session(path: Path) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    sessions = {"fp32": session(fp32), "int8": session(int8)}
    inputs = [letterbox_tensor(_read(p), imgsz) for p in images]
    best = {"fp32": float("inf"), "int8": float("inf")}
    for name, s in sessions.items():  # warm up
        s.run(None, {"images": inputs[0]})
        del name
    for _ in range(rounds):
        for name, s in sessions.items():
            started = time.perf_counter()
            for tensor in inputs:
                s.run(None, {"images": tensor})
            best[name] = min(best[name], (time.perf_counter() - started) / len(inputs))
    return SpeedReport(best["fp32"] * 1000, best["int8"] * 1000, threads, 1)
