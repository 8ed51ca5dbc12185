"""`streetwatch eval` says what each error is: a false alarm is a duplicate, a poor box, on
another class's box or on background; a miss was boxed poorly, taken for another class or
not seen. A fixed ONNX model answers the same boxes on every image: a few seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from click.testing import CliRunner
from fixed_onnx import anchor, fixed_model

from streetwatch.datasets.format import DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main

VENDING, PARKING, LOCK, CABLE, VEHICLE = (TAXONOMY.by_key(k).id for k in (
    "street_vending", "illegal_parking", "ground_lock", "cable_clutter", "vehicle"))

# The truth on every 64x64 image, xyxy pixels (converted to YOLO's centre form below).
TRUTH = [
    (VENDING, (4, 4, 20, 20)),
    (LOCK, (40, 4, 56, 20)),
    (VEHICLE, (40, 40, 56, 56)),
    (PARKING, (4, 40, 20, 56)),
]
ANSWER = [
    anchor(12, 9, 16, 10, VENDING, 0.9),   # [4, 4, 20, 14]: IoU 0.63 with the stall, found
    anchor(12, 15, 16, 10, VENDING, 0.8),  # [4, 10, 20, 20]: IoU 0.63 too, 0.25 with the
    #                                         first (it survives NMS): a duplicate
    anchor(44, 8, 8, 8, LOCK, 0.7),        # [40, 4, 48, 12]: IoU 0.25 with the lock
    anchor(48, 48, 16, 16, PARKING, 0.6),  # exactly on the vehicle: the wrong class
    anchor(30, 30, 12, 12, CABLE, 0.5),    # on nothing: background
    anchor(12, 48, 16, 16, VEHICLE, 0.2),  # on the wrongly parked car, below conf 0.25
]


def _dataset(root: Path, images: int) -> Path:
    labels = Labels.from_arrays(
        [cls for cls, _ in TRUTH],
        [[(x1 + x2) / 128, (y1 + y2) / 128, (x2 - x1) / 64, (y2 - y1) / 64]
         for _, (x1, y1, x2, y2) in TRUTH])
    with DatasetWriter(root) as writer:
        for n in range(images):
            pixels = np.random.default_rng(n).integers(0, 255, (64, 64, 3), dtype=np.uint8)
            ok, data = cv2.imencode(".jpg", pixels)
            assert ok
            writer.add(data.tobytes(), name=f"t{n}.jpg", split="test", labels=labels,
                       source=f"fixture {n}", group=f"t{n}")
    return root


def test_each_false_alarm_and_miss_is_told_by_kind(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", images=2)
    model = fixed_model(tmp_path / "m.onnx", ANSWER)
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(data),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output

    point = json.loads((out / "metrics.json").read_text())["operating_point"]
    errors = point["errors"]
    nothing = {"false_alarms": {"duplicate": 0, "poor_box": 0, "other_class": 0,
                                "background": 0},
               "misses": {"poor_box": 0, "other_class": 0, "not_seen": 0}}

    def expect(false_alarms: dict[str, int], misses: dict[str, int]) -> dict[str, Any]:
        return {"false_alarms": {**nothing["false_alarms"], **false_alarms},
                "misses": {**nothing["misses"], **misses}}

    assert errors == {
        "street_vending": expect({"duplicate": 2}, {}),
        "illegal_parking": expect({"other_class": 2}, {"not_seen": 2}),
        "ground_lock": expect({"poor_box": 2}, {"poor_box": 2}),
        "cable_clutter": expect({"background": 2}, {}),
        "unauthorized_ad": nothing,
        "vehicle": expect({}, {"other_class": 2}),
    }
    # the kinds add up to the counts of the table
    for key, row in errors.items():
        assert sum(row["false_alarms"].values()) == point["classes"][key]["fp"], key
        assert sum(row["misses"].values()) == point["classes"][key]["miss"], key

    report = (out / "report.md").read_text()
    assert ("| class | FP duplicate | FP poor box | FP other class | FP background "
            "| miss poor box | miss other class | miss not seen |") in report
    assert "| ground_lock | 0 | 2 | 0 | 0 | 2 | 0 | 0 |" in report
    assert "| unauthorized_ad |" not in report.split("What the errors are")[1].split("\n\n")[1]
    captions = [line for line in report.splitlines() if line.startswith("![")]
    for caption in ("a second box on the found street_vending", "on the vehicle",
                    "poor box on the ground_lock (IoU 0.25)", "background",
                    "taken for illegal_parking", "boxed loosely (IoU 0.25)"):
        assert any(caption in line for line in captions), caption


def test_an_input_size_off_the_models_stride_is_refused_and_nothing_written(
        tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", images=1)
    model = fixed_model(tmp_path / "m.onnx", ANSWER)
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(data),
                                       "--out", str(out), "--imgsz", "100"])
    assert result.exit_code == 1
    assert "m.onnx: input size 100 is not a multiple of the model's stride (32)" in result.output
    assert not out.exists()
