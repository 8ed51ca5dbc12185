from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from streetwatch.datasets.format import Dataset, DatasetError, DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.datasets.split import apply_split, plan_split
from streetwatch.service.cli import main

RARE, COMMON = 2, 5  # ground_lock, vehicle


def _png(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


@pytest.fixture
def video_dataset(tmp_path: Path) -> Path:
    """20 'videos' of 5 frames each; 3 videos hold the rare class, all hold the common one."""
    out = tmp_path / "ds"
    with DatasetWriter(out) as writer:
        for video in range(20):
            for frame in range(5):
                classes = [COMMON] + ([RARE] if video in (3, 11, 17) else [])
                labels = Labels.from_arrays(classes, [[0.5, 0.5, 0.2, 0.2]] * len(classes))
                writer.add(_png(video * 10 + frame), name=f"v{video:02d}_f{frame}.png",
                           split="train", labels=labels, source="test", group=f"video-{video}")
    return out


def test_split_is_deterministic_and_keeps_groups_whole(video_dataset: Path) -> None:
    dataset = Dataset.open(video_dataset)
    first = plan_split(dataset, val=0.15, test=0.15, seed=0).assignment
    again = plan_split(dataset, val=0.15, test=0.15, seed=0).assignment
    assert first == again
    by_group: dict[str, set[str]] = {}
    for record in dataset.records:
        by_group.setdefault(record.group, set()).add(first[record.path])
    assert all(len(splits) == 1 for splits in by_group.values())
    counts = Counter(first.values())
    assert counts == {"train": 70, "val": 15, "test": 15}


def test_rare_class_reaches_every_split(video_dataset: Path) -> None:
    dataset = Dataset.open(video_dataset)
    for seed in range(5):
        plan = plan_split(dataset, val=0.15, test=0.15, seed=seed).assignment
        splits = {plan[r.path] for r in dataset.records if RARE in dataset.labels(r).class_id}
        assert splits == {"train", "val", "test"}, f"seed {seed}"


def test_cli_moves_files_and_keeps_a_kept_split(video_dataset: Path) -> None:
    dataset = Dataset.open(video_dataset)
    pinned = [r for r in dataset.records if r.group == "video-00"]
    plan = plan_split(dataset, val=0, test=0.5, seed=0)
    apply_split(dataset, plan)  # put some videos in test first
    dataset = Dataset.open(video_dataset)
    in_test = {r.name for r in dataset.split("test")}
    result = CliRunner().invoke(main, ["data", "split", str(video_dataset), "--val", "0.2",
                                       "--test", "0.1", "--keep", "test"])
    assert result.exit_code == 0, result.output
    after = Dataset.open(video_dataset)
    assert {r.name for r in after.split("test")} == in_test
    assert after.split("val")
    for record in after.records:
        assert (video_dataset / record.path).is_file()
        assert (video_dataset / record.label_path).is_file()
    assert {r.name for r in pinned} <= {r.name for r in after.records}
    result = CliRunner().invoke(main, ["data", "validate", str(video_dataset)])
    assert result.exit_code == 0, result.output


def test_failed_move_is_rolled_back(video_dataset: Path) -> None:
    dataset = Dataset.open(video_dataset)
    plan = plan_split(dataset, val=0.15, test=0.15, seed=0)
    moves = plan.moves(dataset.records)
    # Block the last planned move: a file already sits where it would go.
    record, split = moves[-1]
    blocker = video_dataset / "images" / split / record.name
    blocker.write_bytes(b"in the way")
    manifest_before = (video_dataset / "manifest.jsonl").read_bytes()
    with pytest.raises(DatasetError, match="already exists"):
        apply_split(dataset, plan)
    assert (video_dataset / "manifest.jsonl").read_bytes() == manifest_before
    blocker.unlink()
    assert sorted(p.name for p in (video_dataset / "images" / "train").iterdir()) == sorted(
        r.name for r in dataset.records)


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5), (0.2, 1.2)])
def test_bad_fractions_are_refused(video_dataset: Path, val: float, test: float) -> None:
    result = CliRunner().invoke(main, ["data", "split", str(video_dataset), "--val", str(val),
                                       "--test", str(test)])
    assert result.exit_code == 1
    assert "must be in 0..1 and sum below 1" in result.output
