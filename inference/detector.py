"""The detector: an exported YOLO model on onnxruntime, from BGR images to ``Detections``.

Preprocessing is ultralytics' letterbox (aspect kept, grey 114 borders, centred), so what
the exported model sees here is what it saw in validation. Postprocessing turns the raw
``(batch, 4 + classes, anchors)`` output into boxes: per-class confidence thresholds,
class-aware NMS (OpenCV's batched NMS: boxes of different classes never suppress each
other), for classes whose objects are made of parts a second suppression of boxes lying
inside a more confident box of the class (``class_contain``), rescaling to the original
pixels, and a minimum box size.
"""

from __future__ import annotations

import ast
import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from streetwatch.inference.boxes import contained
from streetwatch.inference.types import BGRImage, Detections
from streetwatch.models.registry import ModelCard
from streetwatch.models.taxonomy import TAXONOMY

LETTERBOX_FILL = 114


class ModelError(ValueError):
    """A model file that cannot serve: unreadable, or classes that are not the taxonomy's."""


class DetectorConfig(BaseModel):
    """How detections are filtered, and how onnxruntime runs.

    Attributes:
        conf: Minimum confidence for every class without its own.
        class_conf: Per-class minimum confidence, by class key.
        class_contain: Per class key, drop a box when at least this share of its area lies
            inside a more confident box of its class. A stall is a canopy, a table and
            goods: the model also boxes the table alone inside the whole stall, which NMS
            keeps (their IoU is low). Chosen on 900 generated validation images (seeds 7000
            and 9000) for street:20261206-avg2-736: street vending AP50 0.832 -> 0.850 at
            0.6 (0.8: 0.839, 0.7: 0.842, 0.5: 0.848); applied to every class it cost cable
            clutter and vehicles (a car partly hidden behind another is inside its box).
        iou: NMS IoU threshold within a class.
        min_box_px: Boxes narrower or lower than this (original pixels) are dropped.
        max_det: At most this many boxes per image, the most confident kept.
        batch: Images per onnxruntime call.
        rect: Pad frames only to the model's stride instead of to a square (the model is
            exported with dynamic height and width); a batch of frames of different sizes
            falls back to squares.
        threads: onnxruntime intra-op threads (default: every core).
        spin: Let onnxruntime's threads spin between runs: fastest when the detector has
            the cores to itself; off where other work shares them (the service, and
            ``streetwatch detect``, whose reader thread decodes the next frames), since a
            spinning thread takes the core that work needs (a dashcam clip ran 11% faster
            without spinning, 4 paired rounds).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    conf: float = Field(default=0.25, ge=0, le=1)
    class_conf: dict[str, float] = Field(default_factory=dict)
    class_contain: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: {"street_vending": 0.6})
    iou: float = Field(default=0.45, gt=0, le=1)
    min_box_px: float = Field(default=0.0, ge=0)
    max_det: int = Field(default=300, ge=1)
    batch: int = Field(default=1, ge=1)
    rect: bool = True
    threads: int | None = Field(default=None, ge=1)
    spin: bool = True

    def thresholds(self, classes: list[str]) -> npt.NDArray[np.float32]:
        """The minimum confidence of each class id."""
        for name, given in (("class_conf", self.class_conf),
                            ("class_contain", self.class_contain)):
            unknown = sorted(set(given) - set(classes))
            if unknown:
                raise ValueError(f"{name}: unknown class(es) {unknown}; classes are {classes}")
        return np.array([self.class_conf.get(c, self.conf) for c in classes], np.float32)


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model input: ``input = image * scale + (left, top)``."""

    scale: float
    left: int
    top: int


def letterbox(image: BGRImage, imgsz: int, stride: int | None = None) -> tuple[BGRImage, Letterbox]:
    """Resize keeping the aspect ratio so the longer side is ``imgsz``, and pad: to a square,
    or with ``stride`` only to the next multiple of it (ultralytics' ``auto`` letterbox: a
    16:9 frame at 640 becomes 640x384, 40 % fewer pixels to run than 640x640)."""
    h, w = image.shape[:2]
    scale = min(imgsz / h, imgsz / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh),
                                                          interpolation=cv2.INTER_LINEAR)
    height, width = (imgsz, imgsz) if stride is None else (
        nh + (-nh) % stride, nw + (-nw) % stride)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas = np.full((height, width, 3), LETTERBOX_FILL, np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, Letterbox(scale, left, top)


def to_tensor(images: Sequence[BGRImage]) -> npt.NDArray[np.float32]:
    """Letterboxed BGR images -> the model's NCHW RGB float input in 0..1."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1 / 255)


@dataclass(frozen=True)
class ModelInfo:
    """What the detector needs to know about a model file."""

    path: Path
    classes: list[str]
    imgsz: int
    name: str
    version: str
    sha256: str | None
    stride: int = 32


def read_model_info(path: Path, card: ModelCard | None = None) -> ModelInfo:
    """Classes and image size from the card, else from the ONNX metadata ultralytics wrote.

    Raises:
        ModelError: an unreadable file, missing metadata, or classes not the taxonomy's.
    """
    import onnxruntime as ort

    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if card is not None:
        stride = 32  # YOLO11's largest stride
        classes, imgsz = card.classes, card.imgsz
        name, version = card.name, card.version
        kind = next((k for k, a in card.artefacts.items() if a.file == path.name), None)
        sha = card.artefacts[kind].sha256 if kind else None
    else:
        try:
            meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) \
                .get_modelmeta().custom_metadata_map
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
        try:
            names = ast.literal_eval(meta["names"])
            classes = [names[i] for i in range(len(names))]
            imgsz = int(ast.literal_eval(meta["imgsz"])[0])
            stride = int(meta.get("stride", 32))
        except (KeyError, ValueError, SyntaxError, TypeError, IndexError):
            raise ModelError(f"{path}: no class names and image size in its metadata; "
                             "register it with a model card") from None
        name, version, sha = path.stem, "unregistered", None
    if classes != TAXONOMY.keys:
        raise ModelError(f"{path}: classes {classes} are not the streetwatch taxonomy "
                         f"v{TAXONOMY.version} {TAXONOMY.keys}")
    return ModelInfo(path, list(classes), imgsz, name, version, sha, stride)


class Detects(Protocol):
    """What the pipeline needs of a detector (a ``Detector``, or one that swaps models)."""

    @property
    def config(self) -> DetectorConfig: ...

    def __call__(self, images: Sequence[BGRImage]) -> list[Detections]: ...


class Detector:
    """Runs one ONNX model (FP32 or INT8) on batches of BGR images."""

    def __init__(self, info: ModelInfo, config: DetectorConfig | None = None) -> None:
        import onnxruntime as ort

        self.info = info
        self.config = config or DetectorConfig()
        self._thresholds = self.config.thresholds(info.classes)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        if not self.config.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session: Any = ort.InferenceSession(str(info.path), options,
                                                      providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{info.path}: not a readable ONNX model ({exc})") from None
        model_input = self._session.get_inputs()[0]
        self._input = model_input.name
        # Exported with dynamic height and width, a model takes any multiple of its stride
        # and a 16:9 frame is padded only to that (``rect``); exported static (ultralytics'
        # default), it takes its one square size and batch, and nothing else.
        if len(model_input.shape) != 4:
            raise ModelError(f"{info.path}: its input has shape {model_input.shape}, not "
                             "images (batch, 3, height, width)")
        batch, _, height, width = model_input.shape
        fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        if fixed is not None and fixed != (info.imgsz, info.imgsz):
            raise ModelError(
                f"{info.path}: its input is fixed at {height}x{width}, so it cannot run at "
                f"{info.imgsz} px; export it with dynamic height and width to change its size")
        if isinstance(batch, int) and batch != 1:
            raise ModelError(f"{info.path}: its input batch is fixed at {batch}; export it "
                             "with a dynamic batch or a batch of 1")
        self._pad_stride = None if fixed is not None else info.stride
        self._one_at_a_time = isinstance(batch, int)

    @classmethod
    def open(cls, path: Path, card: ModelCard | None = None,
             config: DetectorConfig | None = None, *, imgsz: int | None = None) -> Detector:
        """A detector for a model file, described by its card when it has one. ``imgsz``
        runs the model at another input size than the one it records (ours are exported
        with dynamic height and width): larger sees small objects better, at a cost that
        grows with the pixels.

        Raises:
            ModelError: besides ``read_model_info``'s, an ``imgsz`` off the model's stride,
                or one the model's fixed input shape cannot take.
        """
        info = read_model_info(path, card)
        if imgsz is not None and imgsz % info.stride:
            raise ModelError(f"{path}: input size {imgsz} is not a multiple of the model's "
                             f"stride ({info.stride})")
        return cls(info if imgsz is None else replace(info, imgsz=imgsz), config)

    def __call__(self, images: Sequence[BGRImage]) -> list[Detections]:
        """Detect in each image; one ``Detections`` per image, in its own pixels."""
        results: list[Detections] = []
        step = 1 if self._one_at_a_time else self.config.batch
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            same = len({image.shape for image in chunk}) == 1
            stride = self._pad_stride if self.config.rect and same else None
            boxed = [letterbox(image, self.info.imgsz, stride) for image in chunk]
            output = self.run_raw(to_tensor([b[0] for b in boxed]))
            for raw, image, (_, fit) in zip(output, chunk, boxed, strict=True):
                results.append(self._postprocess(raw, fit, image.shape[1], image.shape[0]))
        return results

    def with_config(self, config: DetectorConfig) -> Detector:
        """This model read through other thresholds, sharing the loaded session."""
        view = copy.copy(self)
        view.config, view._thresholds = config, config.thresholds(self.info.classes)
        return view

    def detect_views(self, image: BGRImage, views: Sequence[Detector]) -> list[Detections]:
        """One model run on ``image``, read through each view (from :meth:`with_config`):
        what each view would detect alone, for the cost of one run."""
        if any(view._session is not self._session or view.config.rect != self.config.rect
               for view in views):
            raise ValueError("views must come from this detector's with_config, same rect")
        stride = self._pad_stride if self.config.rect else None
        boxed, fit = letterbox(image, self.info.imgsz, stride)
        raw = self.run_raw(to_tensor([boxed]))[0]
        return [view._postprocess(raw, fit, image.shape[1], image.shape[0]) for view in views]

    def run_raw(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The model's raw output for an input tensor: ``(batch, 4 + classes, anchors)``."""
        return np.asarray(self._session.run(None, {self._input: tensor})[0], np.float32)

    def _postprocess(self, raw: npt.NDArray[np.float32], fit: Letterbox, width: int,
                     height: int) -> Detections:
        scores = raw[4:]  # (classes, anchors)
        class_id = scores.argmax(axis=0)
        confidence = scores[class_id, np.arange(scores.shape[1])]
        keep = confidence >= self._thresholds[class_id]
        if not keep.any():
            return Detections.empty()
        cx, cy, w, h = raw[:4, keep]
        confidence, class_id = confidence[keep], class_id[keep]
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        chosen = cv2.dnn.NMSBoxesBatched(xywh.tolist(), confidence.tolist(), class_id.tolist(),
                                         0.0, self.config.iou)
        index = np.asarray(chosen, np.int64).reshape(-1)[:self.config.max_det]
        xyxy = np.empty((len(index), 4), np.float32)
        xyxy[:, :2] = xywh[index, :2]
        xyxy[:, 2:] = xywh[index, :2] + xywh[index, 2:]
        xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - fit.left) / fit.scale).clip(0, width)
        xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - fit.top) / fit.scale).clip(0, height)
        detections = Detections(xyxy, confidence[index].astype(np.float32),
                                class_id[index].astype(np.int64))
        if self.config.class_contain:
            dropped = np.zeros(len(detections), bool)
            for key, share in self.config.class_contain.items():
                mine = detections.class_id == self.info.classes.index(key)
                dropped[mine] = contained(xyxy[mine], detections.confidence[mine], share)
            detections = detections[~dropped]
        if self.config.min_box_px > 0:
            size = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
            detections = detections[size >= self.config.min_box_px]
        return detections
