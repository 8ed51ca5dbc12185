"""`streetwatch data validate DIR [--fix OUT]` on a small valid dataset with seeded problems.

Each ``Seed`` puts one kind of problem into a dataset directory and returns the problem lines
``validate`` must print for it (``file[:line]: severity: ... [code]``). Seeds add their own
files where they can, so several (or all) of them can go into one directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from PIL import Image

from streetwatch.datasets.format import Dataset, DatasetWriter
from streetwatch.datasets.labels import Labels
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.cli import main

W, H = 64, 48

# ---------------------------------------------------------------------------------------------
# tiny images and the base dataset


def encode(seed: int, suffix: str = ".jpg") -> bytes:
    """A distinct small image (seeded noise over a gradient), encoded by OpenCV."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 200, W, dtype=np.float64)[None, :, None]
    pixels = (gradient + rng.integers(0, 56, size=(H, W, 3))).astype(np.uint8)
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok
    return bytes(buffer.tobytes())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def labels(class_ids: list[int], xywhn: list[list[float]]) -> Labels:
    return Labels(np.array(class_ids, dtype=np.int64), np.array(xywhn, dtype=np.float64))


@dataclass(frozen=True)
class BaseImage:
    split: str
    name: str
    seed: int
    labels: Labels


BASE = (
    BaseImage("train", "t1.jpg", 1, labels([0, 1], [[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.2, 0.2]])),
    BaseImage("train", "t2.png", 2, labels([3], [[0.3, 0.4, 0.2, 0.2]])),
    BaseImage("train", "t3.jpg", 3, Labels()),
    BaseImage("val", "v1.jpg", 4, labels([2], [[0.6, 0.6, 0.3, 0.4]])),
    BaseImage("test", "e1.jpg", 5, labels([4, 5], [[0.2, 0.7, 0.1, 0.2], [0.7, 0.3, 0.4, 0.3]])),
)


def base_bytes(name: str) -> bytes:
    image = next(i for i in BASE if i.name == name)
    return encode(image.seed, Path(image.name).suffix)


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "ds"
    with DatasetWriter(out) as writer:
        for image in BASE:
            stem = Path(image.name).stem
            writer.add(base_bytes(image.name), name=image.name, split=image.split,
                       labels=image.labels, source=f"unit:{image.name}", group=f"group-{stem}",
                       meta={"camera": f"cam-{stem}", "reviewer": "ann"})
    return out


@pytest.fixture
def dataset(base_dataset: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid base dataset to seed problems into."""
    copy = tmp_path / "ds"
    shutil.copytree(base_dataset, copy)
    return copy


# ---------------------------------------------------------------------------------------------
# CLI and file helpers


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def validate(root: Path, *options: str | Path) -> Result:
    return cli("data", "validate", root, *options)


PROBLEM_LINE = re.compile(
    r"^(?P<where>\S+): (?P<severity>error|warning): .* \[(?P<code>[a-z0-9-]+)\]$"
)


def problems_in(output: str) -> list[tuple[str, str, str]]:
    """``(severity, code, where)`` of every problem line printed."""
    found = []
    for line in output.splitlines():
        match = PROBLEM_LINE.match(line)
        if match:
            found.append((match["severity"], match["code"], match["where"]))
    return found


def rows(root: Path) -> list[dict[str, Any]]:
    text = (root / "manifest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_rows(root: Path, content: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in content)
    (root / "manifest.jsonl").write_text(text, encoding="utf-8")


def row_line(root: Path, path: str) -> int:
    """1-based manifest line of the row for ``path``."""
    return next(n for n, row in enumerate(rows(root), start=1) if row["path"] == path)


def set_field(root: Path, path: str, key: str, value: Any) -> int:
    content = rows(root)
    number = row_line(root, path)
    content[number - 1][key] = value
    write_rows(root, content)
    return number


def size_of(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(BytesIO(data)) as image:
            return image.size
    except Exception:
        return W, H


def add_image(root: Path, split: str, name: str, data: bytes, label: str | bytes | None,
              *, listed: bool = True, row_data: bytes | None = None) -> int | None:
    """Add an image, its label file (unless None) and a manifest row (unless not listed);
    the row describes ``row_data`` if given. Returns the row's line number."""
    relative = f"images/{split}/{name}"
    (root / relative).write_bytes(data)
    label_path = root / "labels" / split / f"{Path(name).stem}.txt"
    if isinstance(label, bytes):
        label_path.write_bytes(label)
    elif label is not None:
        label_path.write_text(label, encoding="utf-8")
    if not listed:
        return None
    described = data if row_data is None else row_data
    width, height = size_of(described)
    content = rows(root)
    content.append({"path": relative, "sha256": sha256(described), "width": width,
                    "height": height, "source": f"seeded:{name}", "group": f"seeded-{name}",
                    "split": split, "meta": {"seeded": "yes"}})
    write_rows(root, content)
    return len(content)


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def label_rows(root: Path, relative: str) -> list[tuple[int, list[float]]]:
    text = (root / relative).read_text(encoding="utf-8")
    result = []
    for line in text.splitlines():
        fields = line.split()
        result.append((int(fields[0]), [float(v) for v in fields[1:]]))
    return result


# ---------------------------------------------------------------------------------------------
# the problems


Expected = tuple[str, str, str]  # (severity, code, "file" or "file:line")


@dataclass(frozen=True)
class Seed:
    id: str
    apply: Callable[[Path], list[Expected]]
    exit_code: int = 1


def _line_seed(code: str, split: str, name: str, seed: int, text: str,
               line: int) -> Callable[[Path], list[Expected]]:
    def apply(root: Path) -> list[Expected]:
        add_image(root, split, name, encode(seed), text)
        return [("error", code, f"labels/{split}/{Path(name).stem}.txt:{line}")]
    return apply


def seed_image_empty(root: Path) -> list[Expected]:
    add_image(root, "train", "empty.jpg", b"", "0 0.5 0.5 0.2 0.2\n")
    return [("error", "image-empty", "images/train/empty.jpg")]


def seed_image_corrupt(root: Path) -> list[Expected]:
    junk = np.random.default_rng(99).integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    add_image(root, "train", "corrupt.jpg", junk, "0 0.5 0.5 0.2 0.2\n")
    return [("error", "image-unreadable", "images/train/corrupt.jpg")]


def seed_image_truncated(root: Path) -> list[Expected]:
    whole = encode(40)
    add_image(root, "val", "truncated.jpg", whole[: len(whole) // 2], "1 0.5 0.5 0.2 0.2\n")
    return [("error", "image-unreadable", "images/val/truncated.jpg")]


def seed_label_missing(root: Path) -> list[Expected]:
    add_image(root, "val", "nolabel.jpg", encode(41), None)
    return [("warning", "label-missing", "images/val/nolabel.jpg")]


def seed_label_orphan(root: Path) -> list[Expected]:
    (root / "labels" / "test" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return [("error", "label-orphan", "labels/test/ghost.txt")]


def seed_split_leak(root: Path) -> list[Expected]:
    add_image(root, "test", "leak.jpg", base_bytes("t1.jpg"), "4 0.5 0.5 0.2 0.2\n")
    return [("error", "split-leak", "images/test/leak.jpg"),
            ("error", "split-leak", "images/train/t1.jpg")]


def seed_manifest_missing(root: Path) -> list[Expected]:
    (root / "manifest.jsonl").unlink()
    return [("error", "manifest-missing", "manifest.jsonl")]


def seed_manifest_stale(root: Path) -> list[Expected]:
    content = rows(root)
    content.append({**content[0], "path": "images/train/gone.jpg"})
    write_rows(root, content)
    return [("error", "manifest-stale", f"manifest.jsonl:{len(content)}")]


def seed_manifest_unlisted(root: Path) -> list[Expected]:
    add_image(root, "val", "unlisted.jpg", encode(42), "2 0.5 0.5 0.2 0.2\n", listed=False)
    return [("error", "manifest-unlisted", "images/val/unlisted.jpg")]


def seed_manifest_sha256(root: Path) -> list[Expected]:
    # The file was replaced after import by another image of the same size.
    line = add_image(root, "train", "changed.jpg", encode(43), "3 0.5 0.5 0.2 0.2\n",
                     row_data=encode(44))
    return [("error", "manifest-sha256", f"manifest.jsonl:{line}")]


def seed_manifest_row(root: Path) -> list[Expected]:
    # A hand-edited extra line: t2's row again, with a width that is not a number.
    content = rows(root)
    content.append({**content[row_line(root, "images/train/t2.png") - 1], "width": "wide"})
    write_rows(root, content)
    return [("error", "manifest-row", f"manifest.jsonl:{len(content)}")]


def seed_names_not_taxonomy(root: Path) -> list[Expected]:
    content = yaml.safe_load((root / "data.yaml").read_text())
    names = list(TAXONOMY.keys)
    names[0], names[1] = names[1], names[0]
    content["names"] = dict(enumerate(names))
    (root / "data.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return [("error", "names-not-taxonomy", "data.yaml")]


def seed_name_collision(root: Path) -> list[Expected]:
    add_image(root, "val", "t2.jpg", encode(45), "5 0.5 0.5 0.2 0.2\n")
    return [("error", "name-collision", "images/train/t2.png"),
            ("error", "name-collision", "images/val/t2.jpg")]


# Codes the task list does not name but validate.py has; seeded the same way.


def seed_manifest_split(root: Path) -> list[Expected]:
    line = set_field(root, "images/train/t3.jpg", "split", "val")
    return [("error", "manifest-split", f"manifest.jsonl:{line}")]


def seed_manifest_size(root: Path) -> list[Expected]:
    line = set_field(root, "images/val/v1.jpg", "width", W + 1)
    return [("error", "manifest-size", f"manifest.jsonl:{line}")]


def seed_manifest_duplicate(root: Path) -> list[Expected]:
    content = rows(root)
    content.append(dict(content[row_line(root, "images/test/e1.jpg") - 1]))
    write_rows(root, content)
    return [("error", "manifest-duplicate", f"manifest.jsonl:{len(content)}")]


def seed_image_type(root: Path) -> list[Expected]:
    (root / "images" / "train" / "notes.txt").write_text("not an image")
    return [("error", "image-type", "images/train/notes.txt")]


def seed_image_outside_split(root: Path) -> list[Expected]:
    (root / "images" / "loose.jpg").write_bytes(encode(46))
    return [("error", "image-outside-split", "images/loose.jpg")]


def seed_image_duplicate(root: Path) -> list[Expected]:
    add_image(root, "val", "v1copy.jpg", base_bytes("v1.jpg"), "2 0.6 0.6 0.3 0.4\n")
    return [("warning", "image-duplicate", "images/val/v1.jpg"),
            ("warning", "image-duplicate", "images/val/v1copy.jpg")]


def seed_label_unreadable(root: Path) -> list[Expected]:
    add_image(root, "test", "latin.jpg", encode(47), b"0 0.5 0.5 0.2 0.2 \xff\n")
    return [("error", "label-unreadable", "labels/test/latin.txt")]


def seed_data_yaml(root: Path) -> list[Expected]:
    (root / "data.yaml").unlink()
    return [("error", "data-yaml", "data.yaml")]


SEEDS = {
    seed.id: seed for seed in (
        Seed("image-empty", seed_image_empty),
        Seed("image-unreadable-corrupt", seed_image_corrupt),
        Seed("image-unreadable-truncated", seed_image_truncated),
        Seed("label-missing", seed_label_missing, exit_code=0),
        Seed("label-orphan", seed_label_orphan),
        Seed("class-out-of-range", _line_seed(
            "class-out-of-range", "train", "cls.jpg", 50,
            "0 0.5 0.5 0.2 0.2\n6 0.5 0.5 0.1 0.1\n", 2)),
        Seed("coord-non-finite-nan", _line_seed(
            "coord-non-finite", "train", "nan.jpg", 51,
            "1 0.5 0.5 0.2 0.2\n\n0 nan 0.5 0.1 0.1\n", 3)),  # blank lines still count
        Seed("coord-non-finite-inf", _line_seed(
            "coord-non-finite", "val", "inf.jpg", 52, "0 0.5 inf 0.1 0.1\n", 1)),
        Seed("coord-out-of-range", _line_seed(
            "coord-out-of-range", "train", "oor.jpg", 53,
            "2 0.3 0.3 0.1 0.1\n0 0.9 0.5 0.3 0.2\n", 2)),  # right edge at 1.05
        Seed("box-zero-area-zero", _line_seed(
            "box-zero-area", "test", "zero.jpg", 54, "0 0.5 0.5 0 0.2\n", 1)),
        Seed("box-zero-area-negative", _line_seed(
            "box-zero-area", "train", "neg.jpg", 55,
            "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 -0.1 0.2\n", 2)),
        Seed("box-duplicate", _line_seed(
            "box-duplicate", "train", "dup.jpg", 56,
            "3 0.5 0.5 0.2 0.2\n4 0.1 0.1 0.1 0.1\n3 0.5 0.5 0.2 0.2\n", 3)),
        Seed("split-leak", seed_split_leak),
        Seed("label-syntax", _line_seed(
            "label-syntax", "val", "syntax.jpg", 57, "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n", 2)),
        Seed("manifest-missing", seed_manifest_missing),
        Seed("manifest-stale", seed_manifest_stale),
        Seed("manifest-unlisted", seed_manifest_unlisted),
        Seed("manifest-sha256", seed_manifest_sha256),
        Seed("manifest-row", seed_manifest_row),
        Seed("names-not-taxonomy", seed_names_not_taxonomy),
        Seed("name-collision", seed_name_collision),
        Seed("manifest-split", seed_manifest_split),
        Seed("manifest-size", seed_manifest_size),
        Seed("manifest-duplicate", seed_manifest_duplicate),
        Seed("image-type", seed_image_type),
        Seed("image-outside-split", seed_image_outside_split),
        Seed("image-duplicate", seed_image_duplicate, exit_code=0),
        Seed("label-unreadable", seed_label_unreadable),
        Seed("data-yaml", seed_data_yaml),
    )
}

# manifest-missing and data-yaml exclude other seeds by nature (no manifest rows to be wrong;
# data.yaml cannot be both missing and wrong).
NOT_COMBINABLE = {"manifest-missing", "data-yaml"}
# What --fix cannot repair, or repairs by dropping provenance (manifest-row).
NOT_FIXABLE = {"names-not-taxonomy", "data-yaml", "manifest-missing", "manifest-row"}


def assert_reported(result: Result, expected: list[Expected]) -> None:
    printed = problems_in(result.output)
    for item in expected:
        assert item in printed, f"{item} not in:\n{result.output}"


# ---------------------------------------------------------------------------------------------
# validate


def test_valid_dataset_has_no_problems(dataset: Path) -> None:
    result = validate(dataset)
    assert result.exit_code == 0, result.output
    assert f"{dataset}: 5 images, 0 errors, 0 warnings" in result.output
    assert problems_in(result.output) == []
    assert len(Dataset.open(dataset).records) == 5


@pytest.mark.parametrize("seed_id", list(SEEDS))
def test_each_seeded_problem_is_reported_with_file_line_and_code(dataset: Path,
                                                                   seed_id: str) -> None:
    seed = SEEDS[seed_id]
    expected = seed.apply(dataset)
    result = validate(dataset)
    assert result.exit_code == seed.exit_code, result.output
    # Exactly the seeded problem, on the right file (and line), and nothing else.
    assert sorted(problems_in(result.output)) == sorted(expected), result.output
    errors = sum(severity == "error" for severity, _, _ in expected)
    warnings = len(expected) - errors
    assert f"{errors} errors, {warnings} warnings" in result.output


def test_all_problems_in_one_directory_are_all_listed(dataset: Path) -> None:
    expected: list[Expected] = []
    for seed_id, seed in SEEDS.items():
        if seed_id not in NOT_COMBINABLE:
            expected += seed.apply(dataset)
    result = validate(dataset)
    assert result.exit_code == 1
    assert_reported(result, expected)
    assert {code for _, code, _ in problems_in(result.output)} == {
        code for _, code, _ in expected
    }


def test_bad_manifest_row_does_not_hide_other_manifest_problems(dataset: Path) -> None:
    expected = (seed_manifest_row(dataset) + seed_manifest_stale(dataset)
                + seed_manifest_unlisted(dataset) + seed_manifest_sha256(dataset))
    result = validate(dataset)
    assert result.exit_code == 1
    assert_reported(result, expected)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    result = validate(tmp_path / "nope")
    assert result.exit_code == 1
    assert "[not-a-directory]" in result.output


def test_dataset_without_images_is_an_error(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "empty"):
        pass
    result = validate(tmp_path / "empty")
    assert result.exit_code == 1
    assert problems_in(result.output) == [("error", "no-images", "images/")]


# ---------------------------------------------------------------------------------------------
# validate --fix


@dataclass
class FixRun:
    """A dataset with every fixable problem seeded, and ``validate --fix`` run on it."""

    root: Path
    out: Path
    result: Result
    rows_before: dict[str, dict[str, Any]]
    hashes_before: dict[str, str]


@pytest.fixture
def fix_run(dataset: Path, tmp_path: Path) -> FixRun:
    for seed_id, seed in SEEDS.items():
        if seed_id not in NOT_FIXABLE:
            seed.apply(dataset)
    rows_before = {row["path"]: row for row in rows(dataset)}
    hashes_before = file_hashes(dataset)
    out = tmp_path / "fixed"
    result = validate(dataset, "--fix", out)
    return FixRun(dataset, out, result, rows_before, hashes_before)


def test_fix_leaves_the_input_untouched_and_writes_a_valid_copy(fix_run: FixRun) -> None:
    result, out = fix_run.result, fix_run.out
    assert result.exit_code == 0, result.output
    assert file_hashes(fix_run.root) == fix_run.hashes_before  # byte for byte, same files
    assert f"fixed copy written to {out}" in result.output
    still = [line for line in result.output.splitlines() if line.startswith("still: ")]
    assert all(line.endswith("[image-duplicate]") for line in still), still  # copies in val
    again = validate(out)
    assert again.exit_code == 0, again.output
    assert " 0 errors" in again.output
    assert {code for _, code, _ in problems_in(again.output)} <= {"image-duplicate"}
    # The report says what changed.
    assert "dropped image images/train/t1.jpg: same image is kept in a more held-out split" in (
        result.output)
    assert "dropped image images/train/corrupt.jpg: unreadable image" in result.output
    assert "clipped 1 boxes to the image" in result.output
    assert "wrote 1 empty label files; dropped 1 orphan label files" in result.output


def test_fix_drops_bad_images_and_lines_and_clips_boxes(fix_run: FixRun) -> None:
    out = fix_run.out
    paths = {r.path for r in Dataset.open(out).records}
    # Unreadable images are dropped; so are non-images and files outside a split.
    for gone in ("images/train/empty.jpg", "images/train/corrupt.jpg",
                 "images/val/truncated.jpg", "images/loose.jpg", "images/train/notes.txt"):
        assert gone not in paths
        assert not (out / gone).exists()
    assert not (out / "labels/test/ghost.txt").exists()
    # The leaked image is kept once, in the more held-out split, with that split's labels.
    assert "images/train/t1.jpg" not in paths
    assert (out / "images/test/leak.jpg").read_bytes() == base_bytes("t1.jpg")
    assert label_rows(out, "labels/test/leak.txt") == [(4, [0.5, 0.5, 0.2, 0.2])]
    # Bad lines are dropped, good lines of the same file kept.
    assert label_rows(out, "labels/train/cls.txt") == [(0, [0.5, 0.5, 0.2, 0.2])]
    assert label_rows(out, "labels/train/nan.txt") == [(1, [0.5, 0.5, 0.2, 0.2])]
    assert label_rows(out, "labels/val/inf.txt") == []
    assert label_rows(out, "labels/test/zero.txt") == []
    assert label_rows(out, "labels/train/neg.txt") == [(0, [0.5, 0.5, 0.2, 0.2])]
    assert label_rows(out, "labels/train/dup.txt") == [(3, [0.5, 0.5, 0.2, 0.2]),
                                                       (4, [0.1, 0.1, 0.1, 0.1])]
    assert label_rows(out, "labels/val/syntax.txt") == [(0, [0.5, 0.5, 0.2, 0.2])]
    assert label_rows(out, "labels/test/latin.txt") == []
    # A box slightly out of the image is clipped: x 0.75..1.05 -> 0.75..1.0.
    oor = label_rows(out, "labels/train/oor.txt")
    assert oor[0] == (2, [0.3, 0.3, 0.1, 0.1])
    assert oor[1][0] == 0
    assert oor[1][1] == pytest.approx([0.875, 0.5, 0.25, 0.2], abs=1e-6)
    # A missing label file becomes an empty one.
    assert (out / "labels/val/nolabel.txt").read_text() == ""
    # Name collisions are resolved by renaming the later image, labels following it.
    renamed = (out / "images/val/t2_1.jpg").read_bytes()
    assert renamed == (fix_run.root / "images/val/t2.jpg").read_bytes()
    assert label_rows(out, "labels/val/t2_1.txt") == [(5, [0.5, 0.5, 0.2, 0.2])]
    assert (out / "images/train/t2.png").read_bytes() == base_bytes("t2.png")
    assert label_rows(out, "labels/train/t2.txt") == [(3, [0.3, 0.4, 0.2, 0.2])]


def test_fix_rebuilds_the_manifest_keeping_provenance(fix_run: FixRun) -> None:
    by_path = {r.path: r for r in Dataset.open(fix_run.out).records}
    assert "images/train/gone.jpg" not in by_path  # stale row
    for path in ("images/train/t2.png", "images/train/t3.jpg", "images/val/v1.jpg",
                 "images/test/e1.jpg", "images/test/leak.jpg", "images/train/changed.jpg"):
        old, new = fix_run.rows_before[path], by_path[path]
        assert (new.source, new.group, new.meta) == (old["source"], old["group"], old["meta"])
    assert by_path["images/train/t3.jpg"].split == "train"  # row said val; the folder wins
    assert (by_path["images/val/v1.jpg"].width, by_path["images/val/v1.jpg"].height) == (W, H)
    assert by_path["images/train/changed.jpg"].sha256 == sha256(encode(43))
    assert by_path["images/val/unlisted.jpg"].source == "unknown:images/val/unlisted.jpg"
    assert [r["path"] for r in rows(fix_run.out)].count("images/test/e1.jpg") == 1


@pytest.mark.parametrize(("splits", "kept"), [
    (("train", "val"), "val"), (("val", "test"), "test"), (("train", "test"), "test"),
])
def test_fix_keeps_a_leaked_image_in_the_more_held_out_split(
    base_dataset: Path, tmp_path: Path, splits: tuple[str, str], kept: str
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(base_dataset, root)
    data = encode(60)
    for split in splits:
        add_image(root, split, f"copy_{split}.jpg", data, f"0 0.5 0.5 0.{len(split)} 0.2\n")
    out = tmp_path / "fixed"
    result = validate(root, "--fix", out)
    assert result.exit_code == 0, result.output
    copies = [r for r in Dataset.open(out).records if r.sha256 == sha256(data)]
    assert [r.path for r in copies] == [f"images/{kept}/copy_{kept}.jpg"]
    assert copies[0].source == f"seeded:copy_{kept}.jpg"


def test_fix_refuses_an_existing_out_unless_forced(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixed"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = validate(dataset, "--fix", out)
    assert refused.exit_code == 1
    assert "already exists" in refused.output
    assert (out / "keep.txt").read_text() == "mine"
    forced = validate(dataset, "--fix", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert not (out / "keep.txt").exists()
    assert len(Dataset.open(out).records) == 5


def test_fix_reports_what_it_cannot_fix(dataset: Path, tmp_path: Path) -> None:
    seed_names_not_taxonomy(dataset)
    result = validate(dataset, "--fix", tmp_path / "fixed")
    assert result.exit_code == 1
    assert "NOT FIXABLE: data.yaml: error: " in result.output
    assert "still: data.yaml: error: " in result.output


def test_fix_keeps_provenance_of_good_rows_when_one_row_is_bad(dataset: Path,
                                                               tmp_path: Path) -> None:
    seed_manifest_row(dataset)
    out = tmp_path / "fixed"
    result = validate(dataset, "--fix", out)
    assert result.exit_code == 0, result.output
    fixed = {r.path: r for r in Dataset.open(out).records}
    assert fixed["images/val/v1.jpg"].source == "unit:v1.jpg"
    assert fixed["images/val/v1.jpg"].meta == {"camera": "cam-v1", "reviewer": "ann"}


def test_fix_output_has_no_duplicates_created_by_clipping(dataset: Path, tmp_path: Path) -> None:
    # x 0.8..1.1 and 0.8..1.2 both clip to 0.8..1.0
    add_image(dataset, "train", "edge.jpg", encode(61),
              "0 0.95 0.5 0.3 0.2\n0 1.0 0.5 0.4 0.2\n")
    result = validate(dataset, "--fix", tmp_path / "fixed")
    assert result.exit_code == 0, result.output


def test_fix_output_has_no_zero_area_boxes_created_by_clipping(dataset: Path,
                                                               tmp_path: Path) -> None:
    # x 0.9999999..1.2: clipped to 0.9999999..1.0
    add_image(dataset, "train", "sliver.jpg", encode(62), "0 1.0999999 0.5 0.2 0.2\n")
    assert "[coord-out-of-range]" in validate(dataset).output
    result = validate(dataset, "--fix", tmp_path / "fixed")
    assert result.exit_code == 0, result.output


def test_fix_keeps_an_evaluation_set_evaluation_only(dataset: Path, tmp_path: Path) -> None:
    data_yaml = dataset / "data.yaml"
    data_yaml.write_text(data_yaml.read_text() + "eval_only: true\n")
    result = validate(dataset, "--fix", tmp_path / "fixed")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "fixed" / "data.yaml").read_text())["eval_only"] is True
