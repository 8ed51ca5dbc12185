from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from streetwatch.datasets.format import Dataset, DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.datasets.stats import compute_stats, size_bucket
from streetwatch.service.cli import main


def _jpeg(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def test_size_buckets_follow_coco() -> None:
    assert size_bucket(31 * 31) == "small"
    assert size_bucket(32 * 32) == "medium"
    assert size_bucket(95 * 95) == "medium"
    assert size_bucket(96 * 96) == "large"


def _dataset(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    with DatasetWriter(out) as writer:
        # 200x100 image: a 20x10 px box (small), a 100x50 px box (medium: 5000 px^2).
        writer.add(_jpeg(200, 100), name="a.jpg", split="train",
                   labels=Labels.from_arrays([0, 4], [[0.5, 0.5, 0.1, 0.1],
                                                      [0.5, 0.5, 0.5, 0.5]]),
                   source="t", group="a")
        # 400x400 image: a 200x200 px box (large).
        writer.add(_jpeg(400, 400), name="b.jpg", split="val",
                   labels=Labels.from_arrays([4], [[0.5, 0.5, 0.5, 0.5]]), source="t", group="b")
        writer.add(_jpeg(50, 50), name="c.jpg", split="test", labels=Labels(), source="t",
                   group="c")
    return out


def test_counts_per_class_split_and_size(tmp_path: Path) -> None:
    stats = compute_stats(Dataset.open(_dataset(tmp_path)))
    assert stats.images == {"train": 1, "val": 1, "test": 1}
    assert stats.empty_images == {"test": 1}
    assert stats.boxes["train"] == {"street_vending": 1, "unauthorized_ad": 1}
    assert stats.boxes["val"] == {"unauthorized_ad": 1}
    assert stats.sizes["street_vending"] == {"small": 1}
    assert stats.sizes["unauthorized_ad"] == {"medium": 1, "large": 1}


def test_cli_prints_table_and_writes_plot_and_json(tmp_path: Path) -> None:
    directory = _dataset(tmp_path)
    plot, json_out = tmp_path / "stats.png", tmp_path / "stats.json"
    result = CliRunner().invoke(main, ["data", "stats", str(directory), "--plot", str(plot),
                                       "--json", str(json_out)])
    assert result.exit_code == 0, result.output
    assert "unauthorized_ad" in result.output and "empty images" in result.output
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 500 and image.shape[1] > 800
    assert image.std() > 10  # drawn on, not blank
    counts = json.loads(json_out.read_text(encoding="utf-8"))
    assert counts["boxes"]["train"]["unauthorized_ad"] == 1
    assert counts["empty_images"]["test"] == 1


def test_stats_on_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "stats", str(tmp_path)])
    assert result.exit_code == 1
    assert "data.yaml: missing" in result.output
