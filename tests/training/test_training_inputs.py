"""`streetwatch train` refuses bad input before writing anything: missing or empty data,
unknown classes, eval images among the training images, corrupt weights, bad configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from streetwatch.datasets.format import DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.service.cli import main
from streetwatch.training.config import BUILTIN_CONFIGS, load_config
from streetwatch.training.datamix import DataMixError, DataSource, build_mix


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


def _dataset(root: Path, splits: dict[str, list[int]]) -> Path:
    """A dataset whose images are noise made from the given seeds, one vehicle box each."""
    with DatasetWriter(root) as writer:
        for split, seeds in splits.items():
            for seed in seeds:
                writer.add(_jpeg(seed), name=f"img{seed}.jpg", split=split,
                           labels=Labels.from_arrays([5], [[0.5, 0.5, 0.4, 0.4]]),
                           source=f"test seed {seed}", group=f"g{seed}")
    return root


def _train(tmp_path: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(main, ["train", "--out", str(tmp_path / "run"), "--epochs", "1",
                                     *[str(a) for a in args]])


def _assert_refused(result: Result, tmp_path: Path, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert not (tmp_path / "run").exists(), "a refused run left its folder behind"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _dataset(tmp_path / "good", {"train": [1, 2, 3], "val": [4], "test": [5]})


def test_missing_data_yaml(tmp_path: Path, good: Path) -> None:
    (good / "data.yaml").unlink()
    _assert_refused(_train(tmp_path, "--data", good), tmp_path, "data.yaml: missing")


def test_empty_dataset(tmp_path: Path) -> None:
    empty = _dataset(tmp_path / "empty", {})
    _assert_refused(_train(tmp_path, "--data", empty), tmp_path, "no images found")
    only_test = _dataset(tmp_path / "only-test", {"test": [1]})
    _assert_refused(_train(tmp_path, "--data", only_test), tmp_path, "no training images")


def test_unknown_class_id_in_a_label_file(tmp_path: Path, good: Path) -> None:
    (good / "labels/train/img2.txt").write_text("0 0.5 0.5 0.2 0.2\n9 0.5 0.5 0.1 0.1\n")
    _assert_refused(_train(tmp_path, "--data", good), tmp_path,
                    "labels/train/img2.txt:2", "validation error")


def test_unknown_class_name_in_data_yaml(tmp_path: Path, good: Path) -> None:
    text = (good / "data.yaml").read_text().replace("ground_lock", "bollard")
    (good / "data.yaml").write_text(text)
    _assert_refused(_train(tmp_path, "--data", good), tmp_path, "'bollard'", "[names-not-taxonomy]")


def test_a_test_image_of_another_dataset_is_refused(tmp_path: Path, good: Path) -> None:
    other = _dataset(tmp_path / "other", {"train": [5, 6], "val": [7]})  # 5 is good's test
    _assert_refused(_train(tmp_path, "--data", good, "--data", other), tmp_path,
                    "1 training image(s) are evaluation-only", "img5.jpg")


def test_an_eval_only_dataset_guards_and_cannot_train(tmp_path: Path, good: Path) -> None:
    reference = _dataset(tmp_path / "reference", {"test": [2]})
    _assert_refused(_train(tmp_path, "--data", good, "--holdout", reference), tmp_path,
                    "evaluation-only", "img2.jpg")
    with (reference / "data.yaml").open("a") as handle:
        handle.write("eval_only: true\n")
    _assert_refused(_train(tmp_path, "--data", reference), tmp_path, "marked eval_only")


def test_corrupt_weights(tmp_path: Path, good: Path) -> None:
    weights = tmp_path / "broken.pt"
    weights.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    _assert_refused(_train(tmp_path, "--data", good, "--model", weights), tmp_path,
                    "broken.pt: not a readable PyTorch checkpoint")
    _assert_refused(_train(tmp_path, "--data", good, "--model", tmp_path / "absent.pt"),
                    tmp_path, "absent.pt: weights file not found")


@pytest.mark.parametrize(("recipe", "base", "message"), [
    ("imgsz: 64\nepoch: 3\n", None, "recipe.yaml: field 'epoch'"),
    ("imgsz: 64\nhyp: {data: other.yaml}\n", None, "'hyp.data' is set by streetwatch"),
    ("extends: nowhere.yaml\n", None, "nowhere.yaml: config file not found"),
    ("extends: recipe.yaml\n", None,
     "recipe.yaml: field 'extends': 'recipe.yaml' leads back to this recipe"),
    ("extends: base.yaml\nepochs: 1\n", "imgsz: 64\nepoch: 3\n",  # the base's fault
     "base.yaml: field 'epoch'"),
], ids=["typo", "owned-key", "no-base", "loop", "bad-base"])
def test_a_bad_recipe_is_refused_naming_file_and_field(
        tmp_path: Path, good: Path, recipe: str, base: str | None, message: str) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text(recipe)
    if base is not None:
        (tmp_path / "base.yaml").write_text(base)
    _assert_refused(_train(tmp_path, "--data", good, "--config", config), tmp_path, message)


def test_a_recipe_extends_another_and_sets_only_what_differs(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "imgsz: 320\nepochs: 9\nhyp: {lr0: 0.002, nbs: 16}\naugment: {rain: 0.5, fog: 0.2}\n")
    (tmp_path / "more.yaml").write_text(
        "extends: base.yaml\nepochs: 3\nhyp: {lr0: 0.001}\naugment: {fog: 0}\n")
    config = load_config(tmp_path / "more.yaml")
    assert (config.imgsz, config.epochs) == (320, 3)
    assert config.hyp == {"lr0": 0.001, "nbs": 16}
    assert (config.augment.rain, config.augment.fog) == (0.5, 0)
    # a shipped recipe by name: the second stage is the street recipe with a new schedule
    street, continued = load_config(Path("street")), load_config(Path("street-continue"))
    assert continued.augment == street.augment and continued.imgsz == street.imgsz
    assert continued.hyp == {**street.hyp, "lr0": 0.001, "lrf": 0.05, "warmup_epochs": 1,
                             "warmup_bias_lr": 0.001}


def test_resume_needs_a_run(tmp_path: Path, good: Path) -> None:
    result = _train(tmp_path, "--data", good, "--resume")
    assert result.exit_code == 1 and "is not a streetwatch run to resume" in result.output


def test_existing_run_folder_is_not_overwritten(tmp_path: Path, good: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = _train(tmp_path, "--data", good)
    assert result.exit_code == 1 and "already holds a run" in result.output
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_weights_repeat_or_sample_training_images(tmp_path: Path, good: Path) -> None:
    big = _dataset(tmp_path / "big", {"train": list(range(10, 20))})
    mix = build_mix([DataSource(good, 2.0), DataSource(big, 0.5)], tmp_path / "mix")
    listed = (tmp_path / "mix" / "train.txt").read_text().split()
    assert mix.train_images == len(listed) == 2 * 3 + 5
    assert len({p for p in listed if "/d1_" in p}) == 5
    assert mix.val_images == 1 and set(mix.fingerprints()) == {str(good), str(big)}
    for path in listed:  # every listed image resolves, with its label beside it
        assert Path(path).resolve().is_file()
        assert Path(path.replace("/images/", "/labels/")).with_suffix(".txt").exists()


def test_data_weight_syntax() -> None:
    assert DataSource.parse("runs/synth:2.5") == DataSource(Path("runs/synth"), 2.5)
    assert DataSource.parse("runs/synth") == DataSource(Path("runs/synth"), 1.0)
    # a ':' that is part of the path is not a weight
    assert DataSource.parse("runs/a:b") == DataSource(Path("runs/a:b"), 1.0)
    with pytest.raises(DataMixError, match="weight"):
        DataSource.parse("runs/synth:-1")
    with pytest.raises(DataMixError, match="weight"):
        DataSource.parse("runs/synth:nan")


def test_a_failed_mix_keeps_the_previous_one(tmp_path: Path, good: Path) -> None:
    build_mix([DataSource(good)], tmp_path / "mix")
    shutil.rmtree(good / "images" / "val")
    with pytest.raises(DataMixError):
        build_mix([DataSource(good)], tmp_path / "mix")
    assert (tmp_path / "mix" / "data.yaml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("recipe", sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))
def test_every_shipped_recipe_loads_with_known_ultralytics_keys(recipe: str) -> None:
    from ultralytics.utils import DEFAULT_CFG_DICT

    config = load_config(Path(recipe))
    assert set(config.hyp) - set(DEFAULT_CFG_DICT) == set()
