"""benchmarks/hidden_recall.py, run as a user runs it: on generated images it counts every
label once, by visible share and by kind; on images it cannot make again it says which."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from fixed_onnx import anchor, fixed_model

from streetwatch.service.cli import main

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "hidden_recall.py"


def _run(model: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--model", str(model), "--data",
                           str(data)], capture_output=True, text=True, check=False)


def test_every_label_is_counted_once_by_band_and_by_kind(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    made = CliRunner().invoke(main, ["data", "synth", "--out", str(data), "--images", "4",
                                     "--seed", "5", "--size", "320x180", "--workers", "1"])
    assert made.exit_code == 0, made.output
    boxes = sum(len(p.read_text().splitlines()) for p in (data / "labels").rglob("*.txt"))
    assert boxes > 0
    model = fixed_model(tmp_path / "m.onnx", [anchor(1, 1, 1, 1, 0, 0.01)])  # finds nothing
    result = _run(model, data)
    assert result.returncode == 0, result.stderr
    counts = [(kind, int(n)) for kind, n in
              re.findall(r"^  (visible|kind) .*?\d+ of\s+(\d+) found", result.stdout, re.M)]
    assert sum(n for kind, n in counts if kind == "visible") == boxes
    assert sum(n for kind, n in counts if kind == "kind") == boxes
    assert "recall 0.00" in result.stdout


def test_images_it_cannot_make_again_are_named(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    CliRunner().invoke(main, ["data", "synth", "--out", str(data), "--images", "1",
                              "--seed", "5", "--size", "320x180", "--workers", "1"])
    model = fixed_model(tmp_path / "m.onnx", [anchor(1, 1, 1, 1, 0, 0.01)])
    manifest = data / "manifest.jsonl"
    row = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**row, "source": "camera 7"}) + "\n")
    result = _run(model, data)
    assert result.returncode == 1
    assert f"{data}/{row['path']}: source 'camera 7' is not this generator's" in result.stderr
    manifest.write_text(json.dumps({**row, "meta": {**row["meta"], "image_seed": "12"}}) + "\n")
    result = _run(model, data)
    assert result.returncode == 1
    assert (f"{data}/{row['path']}: its labels are not the ones seed 12 makes"
            in result.stderr)


def test_a_missing_dataset_or_model_is_named(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(1, 1, 1, 1, 0, 0.01)])
    result = _run(model, tmp_path / "nowhere")
    assert result.returncode == 2
    assert f"{tmp_path / 'nowhere'}: not a directory" in result.stderr
    result = _run(tmp_path / "absent.onnx", tmp_path)
    assert result.returncode == 2
    assert "absent.onnx: model file not found" in result.stderr
