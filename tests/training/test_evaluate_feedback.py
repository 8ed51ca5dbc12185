"""`streetwatch eval` on a feedback dataset: how many reviewer-rejected false alarms
(``meta["rejected"]``) the model raises again, against a baseline; malformed rows are refused
before anything is written. Fixed ONNX models, no training: a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from fixed_onnx import anchor, fixed_model

from streetwatch.datasets.format import DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main
from streetwatch.training.evaluate import EvalError, evaluate

VENDING, LOCK, VEHICLE = (TAXONOMY.by_key(k).id for k in
                          ("street_vending", "ground_lock", "vehicle"))
assert TAXONOMY.by_id(VENDING).can_be_case and TAXONOMY.by_id(LOCK).can_be_case
assert not TAXONOMY.by_id(VEHICLE).can_be_case

# What the candidate answers on every 64x64 image (input pixels are image pixels):
CANDIDATE = [
    anchor(16, 16, 16, 16, VENDING, 0.9),  # [8, 8, 24, 24], a case class
    anchor(48, 48, 16, 16, VEHICLE, 0.9),  # [40, 40, 56, 56], context: never a case
    anchor(48, 16, 16, 16, LOCK, 0.2),     # [40, 8, 56, 24], below the operating point 0.25
]
# The model in service (the baseline) raises the rejected vending box on [8, 8, 24, 24] too,
# and the ground lock on [40, 8, 56, 24] confidently.
BASELINE = [
    anchor(16, 16, 16, 16, VENDING, 0.8),
    anchor(48, 16, 16, 16, LOCK, 0.7),
]

# rejected box                                  candidate               baseline
REJECTED_A = [
    ["street_vending", 8, 8, 24, 24],          # vending, IoU 1: again   again
    ["illegal_parking", 40, 40, 56, 56],       # only a vehicle: no      no
    ["ground_lock", 40, 8, 56, 24],            # lock at 0.2: no         again
    ["street_vending", 12, 12, 28, 28],        # IoU 0.39: no            no
    ["street_vending", 10.5, 8, 26.5, 24],     # IoU 0.73: again         again
]
REJECTED_B = [
    ["illegal_parking", 8, 8, 24, 24],         # any case class counts: again   again
    ["street_vending", -20, 8, 24, 24],        # clipped to [0, 8, 24, 24],
]                                              # IoU 0.67 (0.36 unclipped): again  again


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


def _dataset(root: Path, test_meta: list[dict[str, str]], val_images: int = 0) -> Path:
    """64x64 noise images, each with one confirmed vehicle where the candidate finds one;
    ``test_meta`` gives each test image's manifest meta."""
    vehicle = Labels.from_arrays([VEHICLE], [[0.75, 0.75, 0.25, 0.25]])
    with DatasetWriter(root) as writer:
        for n, meta in enumerate(test_meta):
            writer.add(_jpeg(n), name=f"t{n}.jpg", split="test", labels=vehicle,
                       source=f"feedback {n}", group=f"t{n}", meta=meta)
        for n in range(val_images):
            writer.add(_jpeg(100 + n), name=f"v{n}.jpg", split="val", labels=vehicle,
                       source=f"plain {n}", group=f"v{n}")
    return root


def _eval(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["eval", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("feedback")
    _dataset(root / "data", [
        {"feedback": "hard_negative", "rejected": json.dumps(REJECTED_A)},
        {"feedback": "labelled", "rejected": "[]"},
        {"feedback": "reviewed_sample"},
        {"feedback": "hard_negative", "rejected": json.dumps(REJECTED_B)},
    ], val_images=2)
    fixed_model(root / "candidate.onnx", CANDIDATE)
    fixed_model(root / "baseline.onnx", BASELINE)
    return root


def test_repeated_rejected_false_alarms_are_counted_against_the_baseline(
        feedback: Path) -> None:
    out = feedback / "eval"
    result = _eval("--model", feedback / "candidate.onnx", "--baseline",
                   feedback / "baseline.onnx", "--data", feedback / "data", "--out", out)
    assert result.exit_code == 0, result.output

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["operating_point"]["rejected_false_alarms"] == {
        "images": 2, "boxes": 7, "repeated": 4, "rate": 0.5714}
    base = json.loads((out / "baseline/metrics.json").read_text())
    assert base["operating_point"]["rejected_false_alarms"] == {
        "images": 2, "boxes": 7, "repeated": 5, "rate": 0.7143}
    # the rejected boxes are background: the confirmed vehicles are all the truth there is
    assert metrics["operating_point"]["classes"]["vehicle"] == {"tp": 4, "fp": 0, "miss": 0}
    # each vehicle is a quarter of the 64 px image: 16 px tall at the model's 64 px input
    assert metrics["operating_point"]["recall_by_height"]["vehicle"] == {
        "0-16": {"instances": 0, "recall": None}, "16-32": {"instances": 4, "recall": 1.0},
        "32-64": {"instances": 0, "recall": None}, ">=64": {"instances": 0, "recall": None}}

    assert ("reviewer-rejected false alarms raised again: 4 of 7 on 2 images (rate 0.5714)"
            in result.output)
    report = (out / "report.md").read_text()
    sentence = ("Of the 7 false alarms reviewers rejected (on 2 images), this model raises 4 "
                "again (rate 0.5714); the baseline raises 5 (rate 0.7143).")
    assert sentence in report
    assert report.index("On the ") < report.index(sentence)  # after the violation-free one
    assert "| vehicle | - | 1.00 (4) | - | - |" in report


def test_without_feedback_the_block_is_zero_and_nothing_is_said(feedback: Path) -> None:
    out = feedback / "eval-val"
    metrics = evaluate(feedback / "candidate.onnx", feedback / "data", out, split="val",
                       examples=0)
    assert metrics["operating_point"]["rejected_false_alarms"] == {
        "images": 0, "boxes": 0, "repeated": 0, "rate": 0.0}
    assert "reviewers rejected" not in (out / "report.md").read_text()
    result = _eval("--model", feedback / "candidate.onnx", "--data", feedback / "data",
                   "--split", "val", "--out", feedback / "eval-val-cli")
    assert result.exit_code == 0, result.output
    assert "rejected false alarms" not in result.output


@pytest.mark.parametrize(("value", "problem"), [
    ("[[street_vending, 1, 2, 3, 4]]", "is not valid JSON"),
    ("", "is not valid JSON"),
    ('{"street_vending": [1, 2, 3, 4]}', "must be a JSON list"),
    ('[["street_vending", 1, 2, 3]]', "entry 0 is"),
    ('[["street_vending", 1, 2, 3, 4], [5, 1, 2, 3, 4]]', "entry 1 is"),
    ('[["street_vending", 1, 2, "3", 4]]', "entry 0 is"),
    ('[["street_vending", 1, 2, true, 4]]', "entry 0 is"),
    ('[["street_vending", 1, 2, NaN, 4]]', "not finite"),
    ('[["street_vending", 30, 2, 10, 4]]', "empty box"),
    ('[["street_vending", 0.1, 0.1, 0.4, 0.5], ["street_vending", 100, 10, 300, 40]]',
     "entry 1 [\"street_vending\", 100, 10, 300, 40] lies outside the 64x64 image"),
])
def test_a_malformed_rejected_list_is_refused_before_out_is_written(
        tmp_path: Path, value: str, problem: str) -> None:
    data = _dataset(tmp_path / "data", [{"feedback": "reviewed_sample"},
                                        {"feedback": "hard_negative", "rejected": value}])
    model = fixed_model(tmp_path / "m.onnx", CANDIDATE)
    out = tmp_path / "eval"
    result = _eval("--model", model, "--data", data, "--out", out)
    assert result.exit_code == 1, result.output
    assert "images/test/t1.jpg: meta['rejected']" in result.output
    assert problem in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.onnx"]
    with pytest.raises(EvalError, match=r"images/test/t1\.jpg"):
        evaluate(model, data, out)


def test_recall_by_height_puts_each_true_box_in_its_band() -> None:
    from streetwatch.training.evaluate import _Counts

    counts = _Counts(found_heights=[10.0, 20.0, 70.0, 16.0], missed_heights=[12.0, 40.0, 15.9])
    assert counts.recall_by_height() == {
        "0-16": {"instances": 3, "recall": 0.3333}, "16-32": {"instances": 2, "recall": 1.0},
        "32-64": {"instances": 1, "recall": 0.0}, ">=64": {"instances": 1, "recall": 1.0}}


def test_examples_sets_how_many_crops_the_report_shows(feedback: Path) -> None:
    counted = {}
    for n in (0, 1, 50):
        out = feedback / f"eval-examples-{n}"
        result = _eval("--model", feedback / "candidate.onnx", "--data", feedback / "data",
                       "--examples", str(n), "--out", out)
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        counted = metrics["operating_point"]["classes"]
        crops = sorted(p.name for p in (out / "examples").iterdir()) \
            if (out / "examples").exists() else []
        for key, kinds in counted.items():
            for kind, total in kinds.items():
                shown = [c for c in crops if c.startswith(f"{key}_{kind}_")]
                assert len(shown) == min(n, total), (n, key, kind)
        report = (out / "report.md").read_text()
        for key, kinds in counted.items():
            if n == 1 and kinds["fp"]:
                assert (f"## {key}\n\n**found** (1 of {kinds['tp']}, most confident first)"
                        in report) or not kinds["tp"]
                assert f"**false alarms** (1 of {kinds['fp']}, most confident first)" in report
    assert max(k["fp"] for k in counted.values()) > 1  # the cap was tested on something
    result = _eval("--model", feedback / "candidate.onnx", "--data", feedback / "data",
                   "--examples", "-1", "--out", feedback / "eval-examples-bad")
    assert result.exit_code == 2
    assert "--examples" in result.output


def test_imgsz_runs_an_onnx_model_at_that_input_size(feedback: Path) -> None:
    """The fixed model answers in input pixels: at 128 px its vehicle lands at half the
    image's coordinates, missing the true box it hits at the model's own 64 px."""
    own = evaluate(feedback / "candidate.onnx", feedback / "data", feedback / "eval-64",
                   split="val", examples=0)
    larger = evaluate(feedback / "candidate.onnx", feedback / "data", feedback / "eval-128",
                      split="val", examples=0, imgsz=128)
    assert (own["model"]["imgsz"], larger["model"]["imgsz"]) == (64, 128)
    assert own["classes"]["vehicle"]["ap50"] == pytest.approx(0.995, abs=0.005)
    assert larger["classes"]["vehicle"]["ap50"] == 0
    assert larger["operating_point"]["classes"]["vehicle"] == {"tp": 0, "fp": 2, "miss": 2}
