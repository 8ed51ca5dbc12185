"""Test helper: an ONNX model whose answer we choose, anchor by anchor (importable from tests
through pytest's ``pythonpath``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streetwatch.models.taxonomy import TAXONOMY

IMGSZ = 64
NC = len(TAXONOMY.keys)


def anchor(cx: float, cy: float, w: float, h: float, cls: int, score: float) -> list[float]:
    """One raw output column: a box in 64x64 input pixels, one class scored."""
    scores = [0.0] * NC
    scores[cls] = score
    return [cx, cy, w, h, *scores]


def fixed_model(path: Path, anchors: list[list[float]], names: list[str] | None = None,
                input_shape: tuple[int | str, ...] = ("n", 3, "h", "w")) -> Path:
    """An ONNX model that ignores its pixels and answers ``anchors`` for every image;
    onnxruntime holds its input to ``input_shape`` (dynamic by default, as we export)."""
    raw = np.array(anchors, np.float32).T[None]  # (1, 4 + NC, A)
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "ones"], ["repeats"], axis=0),
        helper.make_node("Tile", ["raw", "repeats"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(raw, "raw"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([1, 1], np.int64), "ones")]
    graph = helper.make_graph(
        nodes, "fixed",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["n", 4 + NC, len(anchors)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    names = TAXONOMY.keys if names is None else names
    meta = {"names": str(dict(enumerate(names))), "imgsz": f"[{IMGSZ}, {IMGSZ}]"}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path
