"""`streetwatch data merge SRC... --out DIR [--split S] [--eval-only] [--force]`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from streetwatch.datasets.format import Dataset, DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main
from streetwatch.training.datamix import DataMixError, DataSource, build_mix, is_eval_only


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


def _dataset(root: Path, splits: dict[str, list[int]], *, names: list[str] | None = None,
             group: str | None = None) -> Path:
    """Images of noise made from the given seeds (``img<seed>.jpg``), one box each whose
    class is the seed modulo the number of classes; ``group`` puts them all in one group."""
    with DatasetWriter(root, names=names or TAXONOMY.keys) as writer:
        for split, seeds in splits.items():
            for seed in seeds:
                writer.add(_jpeg(seed), name=f"img{seed}.jpg", split=split,
                           labels=Labels.from_arrays([seed % len(writer.names)],
                                                     [[0.5, 0.5, 0.2 + seed / 100, 0.3]]),
                           source=f"unit seed {seed}", group=group or f"g{seed}",
                           meta={"reviewer": "ann", "seed": str(seed)})
    return root


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _merge(out: Path, *args: str | Path) -> Result:
    return _cli("data", "merge", *args, "--out", out)


def _assert_valid(root: Path) -> None:
    result = _cli("data", "validate", root)
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings" in result.output


def _assert_nothing_at(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    return _dataset(tmp_path / "synth-test", {"train": [1, 2], "val": [3], "test": [4, 5]})


@pytest.fixture
def feedback(tmp_path: Path) -> Path:
    return _dataset(tmp_path / "feedback", {"train": [6, 7], "test": [8]})


def test_merge_keeps_only_test_and_traces_every_image_back(
        tmp_path: Path, synth: Path, feedback: Path) -> None:
    out = tmp_path / "reference"
    result = _merge(out, synth, feedback, "--split", "test")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"merged 3 images into {out}: test 3; s0={synth} 2, s1={feedback} 1")

    merged = Dataset.open(out)
    assert [(r.name, r.split, r.group) for r in merged.records] == [
        ("s0_img4.jpg", "test", "s0_g4"), ("s0_img5.jpg", "test", "s0_g5"),
        ("s1_img8.jpg", "test", "s1_g8")]
    assert merged.names == TAXONOMY.keys
    assert not is_eval_only(out)
    for record in merged.records:
        assert record.meta["merged_from"] in {"synth-test", "feedback"}
        root = {"s0": tmp_path / "synth-test", "s1": tmp_path / "feedback"}[
            record.name.split("_", 1)[0]]
        original = next(r for r in Dataset.open(root).records
                        if r.path == record.meta["merged_path"])
        assert record.source == original.source
        assert record.meta == {**original.meta, "merged_from": root.name,
                               "merged_path": original.path}
        data = merged.image_path(record).read_bytes()
        assert data == (root / original.path).read_bytes()
        assert record.sha256 == original.sha256 == hashlib.sha256(data).hexdigest()
        assert (out / record.label_path).read_text() == (root / original.label_path).read_text()
    _assert_valid(out)


def test_merge_of_every_split_passes_validate(tmp_path: Path, synth: Path,
                                              feedback: Path) -> None:
    out = tmp_path / "all"
    result = _merge(out, synth, feedback)
    assert result.exit_code == 0, result.output
    assert "merged 8 images" in result.output
    assert "train 4, val 1, test 3;" in result.output
    merged = Dataset.open(out)
    assert {r.split for r in merged.records} == {"train", "val", "test"}
    _assert_valid(out)


def test_eval_only_lands_in_data_yaml_and_training_refuses_it(
        tmp_path: Path, synth: Path, feedback: Path) -> None:
    out = tmp_path / "reference"
    result = _merge(out, synth, feedback, "--split", "test", "--eval-only")
    assert result.exit_code == 0, result.output
    assert "(eval_only)" in result.output
    content = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    assert content["eval_only"] is True
    assert content["names"] == dict(enumerate(TAXONOMY.keys))
    assert is_eval_only(out)
    with pytest.raises(DataMixError, match="marked eval_only"):
        build_mix([DataSource(out)], tmp_path / "mix")
    _assert_valid(out)


def test_same_names_and_groups_in_both_sources_stay_apart(tmp_path: Path) -> None:
    first = _dataset(tmp_path / "a", {"test": [1, 2]}, group="camera-1")
    second = _dataset(tmp_path / "b", {"test": [1]}, group="camera-1")
    # Same name img1.jpg in both; make the second one a different image.
    (second / "images/test/img1.jpg").write_bytes(_jpeg(99))
    second_ds = Dataset.open(second)
    record = second_ds.records[0]
    data = (second / record.path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (second / "manifest.jsonl").write_text(
        record.model_copy(update={"sha256": sha}).model_dump_json() + "\n", encoding="utf-8")

    out = tmp_path / "merged"
    result = _merge(out, first, second)
    assert result.exit_code == 0, result.output
    merged = Dataset.open(out)
    assert sorted(r.name for r in merged.records) == ["s0_img1.jpg", "s0_img2.jpg",
                                                      "s1_img1.jpg"]
    assert {r.group for r in merged.records} == {"s0_camera-1", "s1_camera-1"}
    _assert_valid(out)


def test_a_source_with_other_class_names_is_refused_and_nothing_written(
        tmp_path: Path, synth: Path) -> None:
    foreign = _dataset(tmp_path / "foreign", {"test": [20]}, names=["car", "person"])
    out = tmp_path / "reference"
    result = _merge(out, synth, foreign, "--split", "test")
    assert result.exit_code == 1
    assert f"{foreign / 'data.yaml'}: names ['car', 'person'] differ from the streetwatch " \
           "taxonomy" in result.output
    _assert_nothing_at(out)


def test_a_source_that_is_not_a_dataset_is_named(tmp_path: Path, synth: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    out = tmp_path / "reference"
    result = _merge(out, synth, broken)
    assert result.exit_code == 1
    assert f"cannot merge {broken}: {broken / 'data.yaml'}: missing" in result.output
    _assert_nothing_at(out)


def test_an_existing_out_needs_force(tmp_path: Path, synth: Path, feedback: Path) -> None:
    out = tmp_path / "reference"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    result = _merge(out, synth, feedback, "--split", "test")
    assert result.exit_code == 1
    assert "already exists; choose another --out or --force" in result.output
    assert (out / "keep.txt").read_text() == "old"

    result = _merge(out, synth, feedback, "--split", "test", "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists()
    assert len(Dataset.open(out).records) == 3


def test_a_merge_selecting_nothing_is_refused(tmp_path: Path, feedback: Path) -> None:
    other = _dataset(tmp_path / "other", {"train": [30]})
    out = tmp_path / "reference"
    result = _merge(out, feedback, other, "--split", "val")
    assert result.exit_code == 1
    assert f"no image in split(s) val of {feedback}, {other}: nothing to merge" in result.output
    _assert_nothing_at(out)


def test_an_image_in_two_splits_of_the_merge_is_refused(tmp_path: Path, synth: Path) -> None:
    leaky = _dataset(tmp_path / "leaky", {"train": [4]})  # img4 is in synth's test split
    out = tmp_path / "merged"
    result = _merge(out, synth, leaky)
    assert result.exit_code == 1
    assert "1 image(s) would be in two splits of the merged dataset" in result.output
    assert f"{leaky / 'images/train/img4.jpg'} (train) == " \
           f"{synth / 'images/test/img4.jpg'} (test)" in result.output
    _assert_nothing_at(out)
    # Only the test split: no leak.
    result = _merge(out, synth, leaky, "--split", "test")
    assert result.exit_code == 0, result.output


def test_out_may_not_replace_a_source(tmp_path: Path, synth: Path, feedback: Path) -> None:
    result = _merge(synth, synth, feedback, "--force")
    assert result.exit_code == 1
    assert f"--out {synth} would replace the source {synth}" in result.output
    assert len(Dataset.open(synth).records) == 5
    result = _merge(tmp_path / "twice", synth, synth)
    assert result.exit_code == 1
    assert "given twice" in result.output
