"""Integration: the real facades-ads photographs, imported exactly as the README says."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from streetwatch.datasets.format import Dataset
from streetwatch.service.cli import main

SHARED = Path(os.environ.get("STREETWATCH_SHARED", Path(__file__).resolve().parents[3] / "shared"))
FACADES = SHARED / "data" / "facades-ads"
MAPPING = ["--map", "win_ad=unauthorized_ad", "--map", "signboard=none", "--map",
           "cantilever=none", "--map", "window=none", "--map", "door=none", "--map", "arch=none"]

pytestmark = [
    pytest.mark.skipif(not FACADES.is_dir(), reason=f"real data not found at {FACADES} "
                       "(../shared beside the clone, or set STREETWATCH_SHARED)"),
]


def _import(out: Path, *extra: str) -> str:
    result = CliRunner().invoke(main, ["data", "import", "yolo", str(FACADES), "--out", str(out),
                                       *MAPPING, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_facades_import_keeps_test_and_removes_leaked_copies(tmp_path: Path) -> None:
    out = tmp_path / "facades-ds"
    output = _import(out)
    dataset = Dataset.open(out)
    # The source has 675 files, but all 114 test photographs are byte-identical copies of
    # training photographs: each is kept once, in test, so evaluation measures something.
    assert len(dataset.records) == 561
    assert len(dataset.split("test")) == 114
    assert len(dataset.split("train")) == 447
    boxes = {split: sum(len(dataset.labels(r)) for r in dataset.split(split))
             for split in ("train", "test")}
    assert boxes == {"train": 152, "test": 12}
    assert all(set(dataset.labels(r).class_id) <= {4} for r in dataset.records)
    assert "114 images were byte-identical copies" in output
    report = json.loads((out / "import-report.json").read_text(encoding="utf-8"))
    assert len(report["leaked_copies_dropped"]) == 114
    assert report["rejected_images"] == [] and report["dropped_boxes"] == []

    result = CliRunner().invoke(main, ["data", "validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "561 images, 0 errors, 0 warnings" in result.output


def test_facades_import_with_keep_leaks_shows_the_leak(tmp_path: Path) -> None:
    out = tmp_path / "as-is"
    _import(out, "--keep-leaks")
    dataset = Dataset.open(out)
    assert len(dataset.records) == 675
    assert sum(len(labels) for _, labels in dataset.iter_labels()) == 176
    result = CliRunner().invoke(main, ["data", "validate", str(out)])
    assert result.exit_code == 1
    assert result.output.count("[split-leak]") == 228
