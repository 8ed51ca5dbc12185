"""`streetwatch data import FORMAT`: each importer on tiny made-up sources, driven by the CLI.

Every source is written by a small per-format writer from one description (``Img`` / ``Box``),
so the same cases (class mapping, splits, bad images, clipped and dropped boxes, atomicity)
run against yolo, coco, voc, labelme and cvat; format-only features have their own tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from streetwatch.datasets.format import Dataset, ImageRecord
from streetwatch.service.cli import main

W, H = 64, 48
FORMATS = ("yolo", "coco", "voc", "labelme", "cvat")
SPLIT_FORMATS = ("yolo", "coco", "voc", "cvat")  # LabelMe has no notion of splits
SIZED_FORMATS = ("coco", "voc", "labelme", "cvat")  # annotations that state the image size

# Pixel corner boxes (0-based edges) in a 64x48 image, and what they become.
BOX_A = (16.0, 12.0, 48.0, 36.0)
XYWHN_A = (0.5, 0.5, 0.5, 0.5)
BOX_B = (8.0, 6.0, 24.0, 18.0)
XYWHN_B = (0.25, 0.25, 0.25, 0.25)
BOX_OUTSIDE = (70.0, 50.0, 90.0, 60.0)  # wholly right of / below the image: dropped
BOX_PARTLY = (-8.0, -6.0, 24.0, 18.0)  # clipped to (0, 0, 24, 18)
XYWHN_PARTLY_CLIPPED = (12 / 64, 9 / 48, 24 / 64, 18 / 48)

STREET_VENDING, ILLEGAL_PARKING, VEHICLE = 0, 1, 5


# ---------------------------------------------------------------------------------------------
# tiny images


def encode(seed: int, suffix: str = ".jpg", size: tuple[int, int] = (W, H)) -> bytes:
    """A distinct small image (seeded noise over a gradient), encoded by OpenCV."""
    rng = np.random.default_rng(seed)
    width, height = size
    gradient = np.linspace(0, 200, width, dtype=np.float64)[None, :, None]
    noise = rng.integers(0, 56, size=(height, width, 3))
    pixels = (gradient + noise).astype(np.uint8)
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok
    return bytes(buffer.tobytes())


def corrupt_bytes(seed: int = 99) -> bytes:
    """Random bytes that no image library recognises."""
    return np.random.default_rng(seed).integers(0, 256, size=1000, dtype=np.uint8).tobytes()


def truncated_jpeg(seed: int = 5) -> bytes:
    """The first half of a real JPEG."""
    data = encode(seed)
    return data[: len(data) // 2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# sources, described once and written in each format


@dataclass
class Box:
    """A source box: class name and pixel corners (0-based edges)."""

    label: str
    xyxy: tuple[float, float, float, float]


@dataclass
class Img:
    """A source image. ``data`` None means the annotation names a file that does not exist."""

    name: str
    data: bytes | None
    boxes: list[Box] = field(default_factory=list)
    split: str = "train"
    declared: tuple[int, int] = (W, H)


@dataclass
class Source:
    """A written source: the path to give ``data import`` and how the importer names things."""

    fmt: str
    arg: Path
    relative: dict[str, str]  # image name -> source-relative path used in reports
    where: dict[tuple[str, int], str]  # (image name, box index) -> where the box is stated

    def source_field(self, name: str) -> str:
        return f"{self.fmt}:{self.arg}/{self.relative[name]}"


def _stem(name: str) -> str:
    return Path(name).stem


def _write_image(path: Path, image: Img) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.data is not None:
        path.write_bytes(image.data)


def write_yolo(root: Path, images: Sequence[Img], classes: Sequence[str]) -> Source:
    """``data.yaml`` + ``images/<split>/`` + ``labels/<split>/``; list files when an image is
    missing (a folder cannot name a file that is not there)."""
    use_lists = any(i.data is None for i in images)
    content: dict[str, Any] = {}
    relative: dict[str, str] = {}
    where: dict[tuple[str, int], str] = {}
    for split in ("train", "val", "test"):
        members = [i for i in images if i.split == split]
        if not members:
            continue
        if use_lists:
            listing = root / f"{split}.txt"
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text("".join(f"images/{split}/{i.name}\n" for i in members))
            content[split] = f"{split}.txt"
        else:
            content[split] = f"images/{split}"
    content["names"] = dict(enumerate(classes))
    for image in images:
        _write_image(root / "images" / image.split / image.name, image)
        width, height = image.declared
        lines = []
        for index, box in enumerate(image.boxes):
            x1, y1, x2, y2 = box.xyxy
            lines.append(
                f"{classes.index(box.label)} {(x1 + x2) / 2 / width:.6f} "
                f"{(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
            )
            where[(image.name, index)] = f"labels/{image.split}/{_stem(image.name)}.txt:{index + 1}"
        label = root / "labels" / image.split / f"{_stem(image.name)}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(lines))
        relative[image.name] = f"images/{image.split}/{image.name}"
    (root / "data.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return Source("yolo", root, relative, where)


def write_coco(root: Path, images: Sequence[Img], classes: Sequence[str]) -> Source:
    """``annotations/instances_<split>.json`` + ``images/``; the source is the folder."""
    where: dict[tuple[str, int], str] = {}
    categories = [{"id": k + 1, "name": c, "supercategory": "thing"} for k, c in enumerate(classes)]
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val", "test"):
        members = [i for i in images if i.split == split]
        if not members:
            continue
        entries: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, image in enumerate(members, start=1):
            _write_image(root / "images" / image.name, image)
            width, height = image.declared
            entries.append({"id": image_id, "file_name": image.name, "width": width,
                            "height": height})
            for index, box in enumerate(image.boxes):
                x1, y1, x2, y2 = box.xyxy
                where[(image.name, index)] = (
                    f"instances_{split}.json: annotations[{len(annotations)}]"
                )
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": classes.index(box.label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                })
        content = {"images": entries, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(content))
    return Source("coco", root, {i.name: i.name for i in images}, where)


def voc_xml(image: Img) -> str:
    objects = []
    for box in image.boxes:
        x1, y1, x2, y2 = box.xyxy
        # VOC pixel indices are 1-based and inclusive: edge x1 is pixel x1 + 1.
        objects.append(
            f"<object><name>{box.label}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><bndbox><xmin>{x1 + 1:g}</xmin><ymin>{y1 + 1:g}</ymin>"
            f"<xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>"
        )
    width, height = image.declared
    return (
        f"<annotation><folder>JPEGImages</folder><filename>{image.name}</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{''.join(objects)}</annotation>"
    )


def write_voc(root: Path, images: Sequence[Img], classes: Sequence[str]) -> Source:
    """``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/<split>.txt``."""
    del classes  # VOC declares no class list; classes are the object names
    where: dict[tuple[str, int], str] = {}
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "JPEGImages").mkdir(parents=True)
    for image in images:
        _write_image(root / "JPEGImages" / image.name, image)
        (root / "Annotations" / f"{_stem(image.name)}.xml").write_text(voc_xml(image))
        for index in range(len(image.boxes)):
            where[(image.name, index)] = f"Annotations/{_stem(image.name)}.xml: object[{index}]"
    for split in ("train", "val", "test"):
        stems = [_stem(i.name) for i in images if i.split == split]
        if stems:
            (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return Source("voc", root, {i.name: f"JPEGImages/{i.name}" for i in images}, where)


def labelme_json(image: Img, *, image_data: str | None = None,
                 extra_shapes: Sequence[dict[str, Any]] = ()) -> str:
    shapes: list[dict[str, Any]] = [
        {"label": box.label, "points": [[box.xyxy[0], box.xyxy[1]], [box.xyxy[2], box.xyxy[3]]],
         "group_id": None, "description": "", "shape_type": "rectangle", "flags": {}}
        for box in image.boxes
    ]
    shapes.extend(extra_shapes)
    width, height = image.declared
    return json.dumps({
        "version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image.name,
        "imageData": image_data, "imageHeight": height, "imageWidth": width,
    })


def write_labelme(root: Path, images: Sequence[Img], classes: Sequence[str]) -> Source:
    """One ``NAME.json`` beside each image, as LabelMe saves them."""
    del classes
    where: dict[tuple[str, int], str] = {}
    root.mkdir(parents=True)
    for image in images:
        _write_image(root / image.name, image)
        (root / f"{_stem(image.name)}.json").write_text(labelme_json(image))
        for index in range(len(image.boxes)):
            where[(image.name, index)] = f"{_stem(image.name)}.json: shapes[{index}]"
    return Source("labelme", root, {i.name: i.name for i in images}, where)


CVAT_SUBSETS = {"train": "Train", "val": "Validation", "test": "Test"}


def cvat_xml(images: Sequence[Img], classes: Sequence[str], *, mode: str = "annotation",
             extra_shapes: dict[str, str] | None = None) -> str:
    labels = "".join(f"<label><name>{c}</name><color>#ff0000</color><type>any</type>"
                     "<attributes/></label>" for c in classes)
    nodes = []
    for number, image in enumerate(images):
        boxes = "".join(
            f'<box label="{b.label}" source="manual" occluded="0" xtl="{b.xyxy[0]:g}" '
            f'ytl="{b.xyxy[1]:g}" xbr="{b.xyxy[2]:g}" ybr="{b.xyxy[3]:g}" z_order="0"></box>'
            for b in image.boxes
        )
        boxes += (extra_shapes or {}).get(image.name, "")
        width, height = image.declared
        nodes.append(
            f'<image id="{number}" name={quoteattr(image.name)} '
            f'subset="{CVAT_SUBSETS[image.split]}" task_id="1" width="{width}" '
            f'height="{height}">{boxes}</image>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"<meta><task><id>1</id><name>street task</name><size>{len(images)}</size>"
        f"<mode>{mode}</mode><labels>{labels}</labels></task></meta>{''.join(nodes)}"
        "</annotations>"
    )


def write_cvat(root: Path, images: Sequence[Img], classes: Sequence[str]) -> Source:
    """``annotations.xml`` + ``images/`` (a CVAT for images 1.1 export); source is the folder."""
    where: dict[tuple[str, int], str] = {}
    (root / "images").mkdir(parents=True)
    for image in images:
        _write_image(root / "images" / image.name, image)
        for index in range(len(image.boxes)):
            where[(image.name, index)] = f"annotations.xml: image {image.name!r} <box>[{index}]"
    (root / "annotations.xml").write_text(cvat_xml(images, classes))
    return Source("cvat", root, {i.name: i.name for i in images}, where)


WRITERS: dict[str, Callable[[Path, Sequence[Img], Sequence[str]], Source]] = {
    "yolo": write_yolo,
    "coco": write_coco,
    "voc": write_voc,
    "labelme": write_labelme,
    "cvat": write_cvat,
}


def standard_images() -> list[Img]:
    """s1 (train): a and b; s2 (val, PNG): a; s3 (test): no boxes."""
    return [
        Img("s1.jpg", encode(1), [Box("a", BOX_A), Box("b", BOX_B)], split="train"),
        Img("s2.png", encode(2, ".png"), [Box("a", BOX_B)], split="val"),
        Img("s3.jpg", encode(3), [], split="test"),
    ]


# ---------------------------------------------------------------------------------------------
# running the CLI and reading its result


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def run_import(source: Source, out: Path, *options: str | Path,
               maps: Sequence[str] = ("a=street_vending", "b=none")) -> Result:
    map_args = [arg for spec in maps for arg in ("--map", spec)]
    return cli("data", "import", source.fmt, source.arg, "--out", out, *map_args, *options)


def import_ok(source: Source, out: Path, *options: str | Path,
              maps: Sequence[str] = ("a=street_vending", "b=none")) -> Dataset:
    result = run_import(source, out, *options, maps=maps)
    assert result.exit_code == 0, result.output
    assert_validates(out)
    return Dataset.open(out)


def assert_validates(out: Path) -> None:
    result = cli("data", "validate", out)
    assert result.exit_code == 0, result.output
    assert " 0 errors" in result.output


def report_of(out: Path) -> dict[str, Any]:
    content = json.loads((out / "import-report.json").read_text(encoding="utf-8"))
    assert isinstance(content, dict)
    return content


def record(dataset: Dataset, name: str) -> ImageRecord:
    """The record of the source image ``name`` (VOC prefixes names with its folder)."""
    found = [r for r in dataset.records if r.name == name or r.name.endswith(f"__{name}")]
    assert len(found) == 1, [r.path for r in dataset.records]
    return found[0]


def boxes(dataset: Dataset, name: str) -> list[tuple[int, tuple[float, ...]]]:
    labels = dataset.labels(record(dataset, name))
    return [(int(c), tuple(float(v) for v in xywhn))
            for c, xywhn in zip(labels.class_id, labels.xywhn, strict=True)]


def assert_boxes(dataset: Dataset, name: str,
                 expected: Sequence[tuple[int, tuple[float, float, float, float]]]) -> None:
    got = boxes(dataset, name)
    assert [c for c, _ in got] == [c for c, _ in expected]
    for (_, box), (_, want) in zip(got, expected, strict=True):
        assert box == pytest.approx(want, abs=1e-6)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# every format: mapping, splits, manifest


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_maps_classes_and_writes_manifest(tmp_path: Path, fmt: str) -> None:
    images = standard_images()
    source = WRITERS[fmt](tmp_path / "src", images, ["a", "b"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=street_vending", "b=none"])
    assert result.exit_code == 0, result.output
    assert "imported 3 images" in result.output
    assert "b -> none: 1 boxes dropped, images kept" in result.output
    assert_validates(out)

    dataset = Dataset.open(out)
    assert len(dataset.records) == 3
    # a -> street_vending (id 0); b's box is gone but its image s1 stays.
    assert_boxes(dataset, "s1.jpg", [(STREET_VENDING, XYWHN_A)])
    assert_boxes(dataset, "s2.png", [(STREET_VENDING, XYWHN_B)])
    assert_boxes(dataset, "s3.jpg", [])
    for image in images:
        assert image.data is not None
        row = record(dataset, image.name)
        assert row.sha256 == sha256(image.data)
        assert (row.width, row.height) == (W, H)
        assert row.source == source.source_field(image.name)
        assert row.group == str(Path(source.relative[image.name]).with_suffix(""))
        assert (out / row.path).read_bytes() == image.data  # stored byte for byte
        assert row.path.endswith(Path(image.name).suffix)

    report = report_of(out)
    assert report["format"] == fmt
    assert report["images"] == 3
    assert report["boxes_by_class"] == {"street_vending": 2}
    assert report["dropped_by_mapping"] == {"b": 1}
    assert report["empty_images"] == 1
    assert report["rejected_images"] == []
    assert report["dropped_boxes"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_maps_two_classes_to_taxonomy_ids(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    dataset = import_ok(source, tmp_path / "out", maps=["a=vehicle", "b=illegal_parking"])
    assert_boxes(dataset, "s1.jpg", [(VEHICLE, XYWHN_A), (ILLEGAL_PARKING, XYWHN_B)])
    assert report_of(tmp_path / "out")["boxes_by_class"] == {"vehicle": 2, "illegal_parking": 1}


@pytest.mark.parametrize("fmt", FORMATS)
def test_unmapped_source_class_is_an_error_naming_it(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=street_vending"])
    assert result.exit_code != 0
    assert "not mapped: b" in result.output
    assert "--map b=<class|none>" in result.output
    assert_nothing_written(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_map_naming_a_class_the_source_lacks_is_an_error(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=street_vending", "b=none", "zebra=vehicle"])
    assert result.exit_code != 0
    assert "does not have: zebra" in result.output
    assert_nothing_written(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_map_to_unknown_streetwatch_class_is_an_error(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=bicycle", "b=none"])
    assert result.exit_code != 0
    assert "'bicycle' is not a streetwatch class" in result.output
    assert_nothing_written(out)


@pytest.mark.parametrize("spec", ["a", "=vehicle", "a="])
def test_malformed_map_spec_is_an_error(tmp_path: Path, spec: str) -> None:
    source = write_yolo(tmp_path / "src", standard_images(), ["a", "b"])
    result = run_import(source, tmp_path / "out", maps=[spec, "b=none"])
    assert result.exit_code != 0
    assert "expected SRC_CLASS=TARGET" in result.output
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("fmt", SPLIT_FORMATS)
def test_source_splits_are_kept(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    dataset = import_ok(source, tmp_path / "out")
    assert record(dataset, "s1.jpg").split == "train"
    assert record(dataset, "s2.png").split == "val"
    assert record(dataset, "s3.jpg").split == "test"
    for row in dataset.records:
        assert row.path.startswith(f"images/{row.split}/")
    assert report_of(tmp_path / "out")["images_by_split"] == {"train": 1, "val": 1, "test": 1}


@pytest.mark.parametrize("fmt", FORMATS)
def test_split_option_overrides_the_source_split(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    dataset = import_ok(source, tmp_path / "out", "--split", "test")
    assert {r.split for r in dataset.records} == {"test"}
    assert len(dataset.split("test")) == 3
    assert_boxes(dataset, "s1.jpg", [(STREET_VENDING, XYWHN_A)])


# ---------------------------------------------------------------------------------------------
# every format: rejected images and dropped boxes are reported


def bad_input_images(fmt: str) -> list[Img]:
    images = [
        Img("good.jpg", encode(10),
            [Box("a", BOX_A), Box("a", BOX_OUTSIDE), Box("a", BOX_PARTLY), Box("b", BOX_B)]),
        Img("corrupt.jpg", corrupt_bytes(), [Box("a", BOX_A)]),
        Img("truncated.jpg", truncated_jpeg(), [Box("a", BOX_A)]),
        Img("empty.jpg", b"", [Box("a", BOX_A)]),
        Img("missing.jpg", None, [Box("a", BOX_A)]),
    ]
    if fmt in SIZED_FORMATS:
        images.append(Img("sized.jpg", encode(11), [Box("a", BOX_A)], declared=(100, 80)))
    return images


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_images_and_boxes_are_reported_not_silent(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", bad_input_images(fmt), ["a", "b"])
    out = tmp_path / "out"
    result = run_import(source, out)
    assert result.exit_code == 0, result.output
    assert_validates(out)

    expected_rejections = {
        "corrupt.jpg": "not a recognised image format",
        "truncated.jpg": "corrupt or truncated image",
        "empty.jpg": "zero-byte file",
        "missing.jpg": "image file not found",
    }
    if fmt in SIZED_FORMATS:
        expected_rejections["sized.jpg"] = "annotation says 100x80 but the image is 64x48"
    report = report_of(out)
    rejected = {entry["image"]: entry["reason"] for entry in report["rejected_images"]}
    assert set(rejected) == {source.relative[n] for n in expected_rejections}
    for name, reason in expected_rejections.items():
        assert rejected[source.relative[name]].startswith(reason)
        assert f"REJECTED image {source.relative[name]}: {reason}" in result.output
    outside = source.where[("good.jpg", 1)]
    assert report["dropped_boxes"] == [
        {"where": outside, "reason": "outside the 64x48 image or under 1 px after clipping"}
    ]
    assert f"DROPPED box {outside}: outside the 64x48 image" in result.output
    assert report["clipped_boxes"] == 1
    assert "boxes clipped to the image: 1" in result.output
    assert (f"{len(expected_rejections)} images rejected and 1 boxes dropped"
            in result.stderr)

    dataset = Dataset.open(out)
    assert [r.name.split("__")[-1] for r in dataset.records] == ["good.jpg"]
    assert_boxes(dataset, "good.jpg",
                 [(STREET_VENDING, XYWHN_A), (STREET_VENDING, XYWHN_PARTLY_CLIPPED)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_degenerate_box_is_dropped_with_a_reason(tmp_path: Path, fmt: str) -> None:
    flat = (20.0, 10.0, 20.0, 30.0)  # zero width
    images = [Img("s1.jpg", encode(1), [Box("a", flat), Box("a", BOX_A), Box("a", BOX_A)])]
    source = WRITERS[fmt](tmp_path / "src", images, ["a"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=street_vending"])
    assert result.exit_code == 0, result.output
    report = report_of(out)
    reasons = {entry["where"]: entry["reason"] for entry in report["dropped_boxes"]}
    assert set(reasons) == {source.where[("s1.jpg", 0)], source.where[("s1.jpg", 2)]}
    assert reasons[source.where[("s1.jpg", 0)]].startswith("zero or negative area")
    assert reasons[source.where[("s1.jpg", 2)]] == "exact duplicate of another box"
    assert_boxes(Dataset.open(out), "s1.jpg", [(STREET_VENDING, XYWHN_A)])
    assert_validates(out)


# ---------------------------------------------------------------------------------------------
# atomicity


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_import_leaves_nothing_and_keeps_existing_out(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    before = file_hashes(out)
    result = run_import(source, out, "--force", maps=["a=street_vending"])  # b unmapped
    assert result.exit_code != 0
    assert file_hashes(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_existing_out_is_refused_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    source = write_yolo(tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    before = file_hashes(out)

    refused = run_import(source, out)
    assert refused.exit_code != 0
    assert "already exists" in refused.output
    assert "--force" in refused.output
    assert file_hashes(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []

    forced = run_import(source, out, "--force")
    assert forced.exit_code == 0, forced.output
    assert not (out / "precious.txt").exists()
    assert len(Dataset.open(out).records) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []
    assert_validates(out)


def test_empty_existing_out_is_used_without_force(tmp_path: Path) -> None:
    source = write_yolo(tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    out.mkdir()
    assert len(import_ok(source, out).records) == 3


def test_crash_mid_import_leaves_no_partial_output(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from streetwatch.datasets.importers import common

    source = write_yolo(tmp_path / "src", standard_images(), ["a", "b"])
    out = tmp_path / "out"
    real = common._import_image
    calls: list[str] = []

    def failing(image: common.SourceImage, *args: Any) -> None:
        calls.append(image.relative)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        real(image, *args)

    monkeypatch.setattr(common, "_import_image", failing)
    result = run_import(source, out)
    assert isinstance(result.exception, RuntimeError)
    assert len(calls) == 2
    assert_nothing_written(out)

    # The same failure with --force keeps the old dataset whole.
    monkeypatch.setattr(common, "_import_image", real)
    import_ok(source, out)
    before = file_hashes(out)
    calls.clear()
    monkeypatch.setattr(common, "_import_image", failing)
    result = run_import(source, out, "--force")
    assert isinstance(result.exception, RuntimeError)
    assert file_hashes(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


# ---------------------------------------------------------------------------------------------
# YOLO


def test_yolo_val_key_pointing_at_images_test_keeps_test(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for split, name, seed in (("train", "t1.jpg", 1), ("test", "x1.jpg", 2), ("test", "x2.jpg", 3)):
        (src / "images" / split).mkdir(parents=True, exist_ok=True)
        (src / "labels" / split).mkdir(parents=True, exist_ok=True)
        (src / "images" / split / name).write_bytes(encode(seed))
        (src / "labels" / split / f"{_stem(name)}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (src / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/test\nnames:\n  0: a\n"
    )
    source = Source("yolo", src, {}, {})
    dataset = import_ok(source, tmp_path / "out", maps=["a=ground_lock"])
    assert {r.name: r.split for r in dataset.records} == {
        "t1.jpg": "train", "x1.jpg": "test", "x2.jpg": "test",
    }
    assert dataset.split("val") == []
    assert_boxes(dataset, "x1.jpg", [(2, XYWHN_A)])


def test_yolo_roboflow_layout_without_usable_yaml_paths(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for folder, name, seed in (("train", "r1.jpg", 1), ("valid", "r2.jpg", 2),
                               ("test", "r3.jpg", 3)):
        (src / folder / "images").mkdir(parents=True)
        (src / folder / "labels").mkdir(parents=True)
        (src / folder / "images" / name).write_bytes(encode(seed))
        (src / folder / "labels" / f"{_stem(name)}.txt").write_text("0 0.25 0.25 0.25 0.25\n")
    # Roboflow's data.yaml points outside the folder; the reader falls back to the layout.
    (src / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 1\n"
        "names: ['a']\n"
    )
    dataset = import_ok(Source("yolo", src, {}, {}), tmp_path / "out", maps=["a=vehicle"])
    assert {r.name: r.split for r in dataset.records} == {
        "r1.jpg": "train", "r2.jpg": "val", "r3.jpg": "test",
    }
    assert_boxes(dataset, "r2.jpg", [(VEHICLE, XYWHN_B)])
    assert record(dataset, "r2.jpg").source == f"yolo:{src}/valid/images/r2.jpg"


def test_yolo_malformed_label_lines_are_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images" / "train").mkdir(parents=True)
    (src / "labels" / "train").mkdir(parents=True)
    (src / "images" / "train" / "m.jpg").write_bytes(encode(1))
    (src / "labels" / "train" / "m.txt").write_text(
        "0 0.5 0.5 0.5 0.5\n"         # 1: fine
        "0 0.5 0.5\n"                 # 2: too few fields
        "x 0.1 0.1 0.1 0.1\n"         # 3: class not an integer
        "7 0.5 0.5 0.1 0.1\n"         # 4: class id out of range
        "1 0.5 0.5 wide 0.1\n"        # 5: coordinate not a number
        "\n"                          # 6: blank, ignored
        "1 0.125 0.125 0.375 0.125 0.375 0.375 0.125 0.375\n"  # 7: segment -> extent
        "0 nan 0.5 0.1 0.1\n"         # 8: non-finite
    )
    (src / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (src / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
    out = tmp_path / "out"
    result = run_import(Source("yolo", src, {}, {}), out, maps=["a=street_vending",
                                                                "b=cable_clutter"])
    assert result.exit_code == 0, result.output
    dropped = {e["where"]: e["reason"] for e in report_of(out)["dropped_boxes"]}
    assert dropped == {
        "labels/train/m.txt:2": "expected 5 fields 'class cx cy w h', got 3",
        "labels/train/m.txt:3": "class id 'x' is not an integer",
        "labels/train/m.txt:4": "class id 7 out of range 0..1",
        "labels/train/m.txt:5": "coordinates '0.5 0.5 wide 0.1' are not all numbers",
        "labels/train/m.txt:8": "non-finite coordinate",
        "labels/train/orphan.txt": "label file without an image; not imported",
    }
    for where in dropped:
        assert f"DROPPED box {where}: " in result.output
    dataset = Dataset.open(out)
    assert_boxes(dataset, "m.jpg", [(STREET_VENDING, XYWHN_A), (3, XYWHN_B)])
    assert_validates(out)


def leak_source(tmp_path: Path) -> Source:
    same = encode(42)
    images = [
        Img("same.jpg", same, [Box("a", BOX_A)], split="train"),
        Img("same.jpg", same, [Box("b", BOX_B)], split="test"),
        Img("other.jpg", encode(43), [Box("a", BOX_B)], split="train"),
        Img("v.jpg", encode(44), [Box("a", BOX_A)], split="val"),
    ]
    return write_yolo(tmp_path / "src", images, ["a", "b"])


def test_yolo_cross_split_copy_is_kept_once_in_test(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_import(leak_source(tmp_path), out, maps=["a=street_vending",
                                                          "b=illegal_parking"])
    assert result.exit_code == 0, result.output
    assert "1 images were byte-identical copies" in result.output
    assert "images/train/same.jpg = images/test/same.jpg" in result.output
    assert report_of(out)["leaked_copies_dropped"] == [
        {"image": "images/train/same.jpg", "kept": "images/test/same.jpg"}
    ]
    dataset = Dataset.open(out)
    assert sorted(r.path for r in dataset.records) == [
        "images/test/same.jpg", "images/train/other.jpg", "images/val/v.jpg",
    ]
    # The copy kept is the test one, with the test labels.
    assert_boxes(dataset, "same.jpg", [(ILLEGAL_PARKING, XYWHN_B)])
    assert_validates(out)


def test_yolo_keep_leaks_keeps_both_copies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_import(leak_source(tmp_path), out, "--keep-leaks",
                        maps=["a=street_vending", "b=illegal_parking"])
    assert result.exit_code == 0, result.output
    assert report_of(out)["leaked_copies_dropped"] == []
    dataset = Dataset.open(out)
    by_split = {r.split: r for r in dataset.records if r.sha256 == sha256(encode(42))}
    assert set(by_split) == {"train", "test"}
    # Names stay unique across the dataset: the second copy gets a suffix.
    assert {by_split["train"].name, by_split["test"].name} == {"same.jpg", "same_1.jpg"}
    assert dataset.labels(by_split["train"]).class_id.tolist() == [STREET_VENDING]
    assert dataset.labels(by_split["test"]).class_id.tolist() == [ILLEGAL_PARKING]
    # ... and the validator then points at the leak.
    validated = cli("data", "validate", out)
    assert validated.exit_code == 1
    assert "[split-leak]" in validated.output


def frames(split_of_a3: str = "train") -> list[Img]:
    return [
        Img("camA_frame001.jpg", encode(1), [Box("a", BOX_A)]),
        Img("camA_frame002.jpg", encode(2), [Box("a", BOX_A)]),
        Img("camA_frame003.jpg", encode(3), [Box("a", BOX_A)], split=split_of_a3),
        Img("camB_frame001.jpg", encode(4), [Box("a", BOX_A)]),
        Img("still.jpg", encode(5), []),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_group_regex_groups_frames_of_one_video(tmp_path: Path, fmt: str) -> None:
    source = WRITERS[fmt](tmp_path / "src", frames(), ["a"])
    dataset = import_ok(source, tmp_path / "out", "--group-regex", r"^(.*)_frame\d+",
                        maps=["a=street_vending"])
    groups = {name: record(dataset, name).group for name in
              ("camA_frame001.jpg", "camA_frame002.jpg", "camA_frame003.jpg",
               "camB_frame001.jpg", "still.jpg")}
    prefix = str(Path(source.relative["camA_frame001.jpg"]).parent)
    # YOLO groups by the name within the split folder, so frames in train/ and val/ meet.
    prefix = "" if fmt == "yolo" or prefix == "." else f"{prefix}/"
    assert groups["camA_frame001.jpg"] == f"{prefix}camA"
    assert groups["camA_frame002.jpg"] == groups["camA_frame003.jpg"] == f"{prefix}camA"
    assert groups["camB_frame001.jpg"] == f"{prefix}camB"
    # No match: the image is its own group.
    assert groups["still.jpg"] == f"{prefix}still"


def test_yolo_group_regex_groups_frames_across_split_folders(tmp_path: Path) -> None:
    source = write_yolo(tmp_path / "src", frames(split_of_a3="val"), ["a"])
    dataset = import_ok(source, tmp_path / "out", "--group-regex", r"^(.*)_frame\d+",
                        maps=["a=street_vending"])
    assert record(dataset, "camA_frame003.jpg").split == "val"
    assert record(dataset, "camA_frame001.jpg").group == record(dataset, "camA_frame003.jpg").group


def test_invalid_group_regex_is_an_error(tmp_path: Path) -> None:
    source = write_yolo(tmp_path / "src", standard_images(), ["a", "b"])
    result = run_import(source, tmp_path / "out", "--group-regex", "(unclosed")
    assert result.exit_code != 0
    assert "--group-regex '(unclosed'" in result.output
    assert_nothing_written(tmp_path / "out")


def test_yolo_without_data_yaml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src" / "images" / "train").mkdir(parents=True)
    result = run_import(Source("yolo", tmp_path / "src", {}, {}), tmp_path / "out")
    assert result.exit_code != 0
    assert "data.yaml: missing" in result.output
    assert_nothing_written(tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# COCO


def coco_file(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]],
              names: Sequence[str] = ("a",)) -> Path:
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def test_coco_split_from_json_file_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "c1.jpg").write_bytes(encode(1))
    (src / "images" / "c2.jpg").write_bytes(encode(2))
    json_file = coco_file(
        src / "instances_val.json",
        [{"id": 1, "file_name": "c1.jpg", "width": W, "height": H},
         {"id": 2, "file_name": "c2.jpg"}],  # no size stated: not checked
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [16, 12, 32, 24]},
         {"id": 2, "image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5]},
         {"id": 3, "image_id": 2, "category_id": 4, "bbox": [1, 1, 5, 5]},
         {"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 1]}],
    )
    out = tmp_path / "out"
    result = cli("data", "import", "coco", json_file, "--out", out, "--map", "a=unauthorized_ad")
    assert result.exit_code == 0, result.output
    assert_validates(out)
    dataset = Dataset.open(out)
    assert {r.name: r.split for r in dataset.records} == {"c1.jpg": "val", "c2.jpg": "val"}
    assert_boxes(dataset, "c1.jpg", [(4, XYWHN_A)])
    assert_boxes(dataset, "c2.jpg", [])
    assert record(dataset, "c1.jpg").source == f"coco:{json_file}/c1.jpg"
    assert report_of(out)["dropped_boxes"] == [
        {"where": "instances_val.json: annotations[1]", "reason": "image_id 9 not in images"},
        {"where": "instances_val.json: annotations[2]",
         "reason": "category_id 4 not in categories"},
        {"where": "instances_val.json: annotations[3]",
         "reason": "bbox must be [x, y, width, height]"},
    ]


def test_coco_video_id_puts_frames_in_one_group(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    entries = []
    for image_id, (name, video) in enumerate(
        [("f1.jpg", 7), ("f2.jpg", 7), ("f3.jpg", 8), ("f4.jpg", None)], start=1
    ):
        (src / "images" / name).write_bytes(encode(image_id))
        entry: dict[str, Any] = {"id": image_id, "file_name": name, "width": W, "height": H}
        if video is not None:
            entry["video_id"] = video
        entries.append(entry)
    json_file = coco_file(src / "instances_train.json", entries, [])
    dataset = import_ok(Source("coco", json_file, {}, {}), tmp_path / "out",
                        maps=["a=street_vending"])
    groups = {r.name: r.group for r in dataset.records}
    assert groups["f1.jpg"] == groups["f2.jpg"]
    assert len({groups["f1.jpg"], groups["f3.jpg"], groups["f4.jpg"]}) == 3
    assert "7" in groups["f1.jpg"]
    assert groups["f4.jpg"] == "f4"
    assert {r.split for r in dataset.records} == {"train"}


def test_coco_images_option_points_at_the_image_folder(tmp_path: Path) -> None:
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "p1.jpg").write_bytes(encode(1))
    (tmp_path / "ann").mkdir()
    json_file = coco_file(tmp_path / "ann" / "test.json",
                          [{"id": 1, "file_name": "p1.jpg", "width": W, "height": H}],
                          [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 6, 16, 12]}])
    dataset = import_ok(Source("coco", json_file, {}, {}), tmp_path / "out", "--images",
                        tmp_path / "pictures", maps=["a=street_vending"])
    assert record(dataset, "p1.jpg").split == "test"
    assert_boxes(dataset, "p1.jpg", [(STREET_VENDING, XYWHN_B)])


def test_coco_malformed_json_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "instances_train.json"
    bad.write_text('{"images": [], "annotations": [')
    result = cli("data", "import", "coco", bad, "--out", tmp_path / "out", "--map", "a=vehicle")
    assert result.exit_code != 0
    assert f"{bad}:1: not valid JSON" in result.output
    assert_nothing_written(tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# Pascal VOC


def test_voc_image_sets_and_one_based_coordinates(tmp_path: Path) -> None:
    images = [
        Img("v1.jpg", encode(1), [Box("car", (0.0, 0.0, 64.0, 48.0))], split="val"),
        Img("v2.jpg", encode(2), [Box("stall", BOX_A)], split="test"),
        Img("v3.jpg", encode(3), [Box("car", BOX_B)], split="train"),
    ]
    source = write_voc(tmp_path / "src", images, [])
    # VOC's whole-image box is xmin=1 .. xmax=64, i.e. edges 0..64.
    assert "<xmin>1</xmin>" in (tmp_path / "src/Annotations/v1.xml").read_text()
    dataset = import_ok(source, tmp_path / "out", maps=["car=illegal_parking",
                                                         "stall=street_vending"])
    assert {r.name: r.split for r in dataset.records} == {
        "JPEGImages__v1.jpg": "val", "JPEGImages__v2.jpg": "test", "JPEGImages__v3.jpg": "train",
    }
    assert_boxes(dataset, "v1.jpg", [(ILLEGAL_PARKING, (0.5, 0.5, 1.0, 1.0))])
    assert_boxes(dataset, "v2.jpg", [(STREET_VENDING, XYWHN_A)])


def test_voc_without_image_sets_goes_to_train_and_bad_xml_is_reported(tmp_path: Path) -> None:
    source = write_voc(tmp_path / "src", [Img("v1.jpg", encode(1), [Box("car", BOX_A)])], [])
    for listing in (tmp_path / "src/ImageSets/Main").iterdir():
        listing.unlink()
    (tmp_path / "src/Annotations/broken.xml").write_text("<annotation><filename>")
    (tmp_path / "src/Annotations/v1.xml").write_text(
        voc_xml(Img("v1.jpg", None, [Box("car", BOX_A)])).replace(
            "</annotation>", "<object><name>car</name></object></annotation>"
        )
    )
    out = tmp_path / "out"
    result = run_import(source, out, maps=["car=vehicle"])
    assert result.exit_code == 0, result.output
    dropped = {e["where"]: e["reason"] for e in report_of(out)["dropped_boxes"]}
    assert dropped["Annotations/broken.xml"].startswith("unreadable XML")
    assert dropped["Annotations/v1.xml: object[1]"] == "non-finite coordinate"
    dataset = Dataset.open(out)
    assert [r.split for r in dataset.records] == ["train"]
    assert_boxes(dataset, "v1.jpg", [(VEHICLE, XYWHN_A)])


# ---------------------------------------------------------------------------------------------
# LabelMe


def test_labelme_embedded_image_data_without_image_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = encode(1, ".png")
    image = Img("embedded.png", data, [Box("a", BOX_A)])
    (src / "embedded.json").write_text(
        labelme_json(image, image_data=base64.b64encode(data).decode("ascii"))
    )
    (src / "broken.json").write_text(
        labelme_json(Img("broken.png", None, [Box("a", BOX_B)]), image_data="!!not base64!!")
    )
    out = tmp_path / "out"
    result = cli("data", "import", "labelme", src, "--out", out, "--map", "a=street_vending")
    assert result.exit_code == 0, result.output
    assert_validates(out)
    dataset = Dataset.open(out)
    row = record(dataset, "embedded.png")
    assert row.sha256 == sha256(data)
    assert (row.width, row.height) == (W, H)
    assert (out / row.path).read_bytes() == data
    assert_boxes(dataset, "embedded.png", [(STREET_VENDING, XYWHN_A)])
    report = report_of(out)
    assert {"where": "broken.json", "reason": "imageData is not valid base64"} in (
        report["dropped_boxes"]
    )
    assert [e["image"] for e in report["rejected_images"]] == ["broken.png"]


def test_labelme_point_and_line_shapes_are_reported_polygons_and_circles_are_boxes(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "l1.jpg").write_bytes(encode(1))
    shapes = [
        {"label": "a", "points": [[10, 10]], "shape_type": "point"},
        {"label": "a", "points": [[1, 1], [9, 9]], "shape_type": "line"},
        {"label": "b", "points": [[16, 24], [32, 12], [48, 30], [40, 36]],
         "shape_type": "polygon"},
        {"label": "b", "points": [[16, 12], [16, 18]], "shape_type": "circle"},  # radius 6
        {"label": "a", "points": [[5, 5]], "shape_type": "rectangle"},  # one point only
        {"label": "a", "points": [[8, 6], [24, 18]], "shape_type": "rectangle"},
    ]
    (src / "l1.json").write_text(labelme_json(Img("l1.jpg", None), extra_shapes=shapes))
    out = tmp_path / "out"
    result = cli("data", "import", "labelme", src, "--out", out, "--map", "a=none",
                 "--map", "b=cable_clutter")
    assert result.exit_code == 0, result.output
    report = report_of(out)
    dropped = {e["where"]: e["reason"] for e in report["dropped_boxes"]}
    assert dropped == {
        "l1.json: shapes[0]": "shape_type 'point' (a) is not a box",
        "l1.json: shapes[1]": "shape_type 'line' (a) is not a box",
        "l1.json: shapes[4]": "shape needs a label and at least two points",
    }
    assert "DROPPED box l1.json: shapes[0]: shape_type 'point' (a) is not a box" in result.output
    assert report["dropped_by_mapping"] == {"a": 1}
    # polygon extent 16..48 x 12..36; circle centre (16,12) radius 6 -> 10..22 x 6..18
    assert_boxes(Dataset.open(out), "l1.jpg",
                 [(3, XYWHN_A), (3, (16 / 64, 12 / 48, 12 / 64, 12 / 48))])
    assert_validates(out)


def test_labelme_map_for_label_used_only_on_points_is_accepted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "l1.jpg").write_bytes(encode(1))
    shapes = [{"label": "pole", "points": [[10, 10]], "shape_type": "point"}]
    (src / "l1.json").write_text(
        labelme_json(Img("l1.jpg", None, [Box("stall", BOX_A)]), extra_shapes=shapes)
    )
    out = tmp_path / "out"
    result = cli("data", "import", "labelme", src, "--out", out, "--map", "stall=street_vending",
                 "--map", "pole=none")
    assert result.exit_code == 0, result.output
    assert "l1.json: shapes[1]" in result.output


# ---------------------------------------------------------------------------------------------
# CVAT


def test_cvat_polygon_becomes_its_extent_and_other_shapes_are_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    image = Img("k1.jpg", encode(1), [], split="val")
    (src / "images" / "k1.jpg").write_bytes(encode(1))
    extra = {"k1.jpg": (
        '<polygon label="a" source="manual" occluded="0" '
        'points="16.00,24.00;32.00,12.00;48.00,30.00;40.00,36.00" z_order="0"></polygon>'
        '<polyline label="a" source="manual" occluded="0" points="1,1;5,5" z_order="0"/>'
        '<points label="a" source="manual" occluded="0" points="3,3" z_order="0"/>'
        '<tag label="a" source="manual"/>'
    )}
    (src / "annotations.xml").write_text(cvat_xml([image], ["a", "unused"], extra_shapes=extra))
    out = tmp_path / "out"
    # "unused" is declared in <meta> though no shape uses it: it must be mapped too.
    unmapped = cli("data", "import", "cvat", src, "--out", out, "--map", "a=street_vending")
    assert unmapped.exit_code != 0
    assert "not mapped: unused" in unmapped.output
    result = cli("data", "import", "cvat", src, "--out", out, "--map", "a=street_vending",
                 "--map", "unused=none")
    assert result.exit_code == 0, result.output
    assert_validates(out)
    dataset = Dataset.open(out)
    assert record(dataset, "k1.jpg").split == "val"
    assert_boxes(dataset, "k1.jpg", [(STREET_VENDING, XYWHN_A)])
    dropped = {e["where"]: e["reason"] for e in report_of(out)["dropped_boxes"]}
    assert dropped == {
        "annotations.xml: image 'k1.jpg' <polyline>[1]": "<polyline> (a) is not a box",
        "annotations.xml: image 'k1.jpg' <points>[2]": "<points> (a) is not a box",
        "annotations.xml: image 'k1.jpg' <tag>[3]": "<tag> (a) is not a box",
    }


def test_cvat_video_task_frames_form_one_group(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    images = [Img(f"frame_{i:06d}.png", encode(i, ".png"), [Box("a", BOX_A)]) for i in range(3)]
    for image in images:
        assert image.data is not None
        (src / "images" / image.name).write_bytes(image.data)
    (src / "annotations.xml").write_text(cvat_xml(images, ["a"], mode="interpolation"))
    dataset = import_ok(Source("cvat", src, {}, {}), tmp_path / "out", maps=["a=vehicle"])
    assert len({r.group for r in dataset.records}) == 1
    assert "street task" in dataset.records[0].group


def test_cvat_unreadable_xml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "annotations.xml").write_text("<annotations><image")
    result = cli("data", "import", "cvat", tmp_path / "src", "--out", tmp_path / "out",
                 "--map", "a=vehicle")
    assert result.exit_code != 0
    assert "unreadable XML" in result.output
    assert_nothing_written(tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# malformed sizes and leak handling: known bugs


def test_coco_image_entry_with_width_but_no_height_is_a_clean_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "c1.jpg").write_bytes(encode(1))
    json_file = coco_file(src / "instances_train.json",
                          [{"id": 1, "file_name": "c1.jpg", "width": W}], [])
    result = cli("data", "import", "coco", json_file, "--out", tmp_path / "out",
                 "--map", "a=vehicle")
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "images[0]" in result.output


def test_voc_non_integer_size_does_not_crash(tmp_path: Path) -> None:
    source = write_voc(tmp_path / "src", [Img("v1.jpg", encode(1), [Box("car", BOX_A)])], [])
    xml = tmp_path / "src" / "Annotations" / "v1.xml"
    xml.write_text(xml.read_text().replace("<width>64</width>", "<width>64.0</width>"))
    result = run_import(source, tmp_path / "out", maps=["car=vehicle"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    assert result.exit_code == 0 or "v1.xml" in result.output


def test_leak_handling_keeps_the_other_copy_when_the_held_out_copy_is_rejected(
    tmp_path: Path,
) -> None:
    same = encode(5)
    images = [
        Img("tr.jpg", same, [Box("a", BOX_A)], split="train"),
        Img("te.jpg", same, [Box("a", BOX_A)], split="test", declared=(100, 80)),
    ]
    source = write_coco(tmp_path / "src", images, ["a"])
    out = tmp_path / "out"
    result = run_import(source, out, maps=["a=vehicle"])
    assert result.exit_code == 0, result.output
    report = report_of(out)
    assert [e["image"] for e in report["rejected_images"]] == ["te.jpg"]
    assert [r.path for r in Dataset.open(out).records] == ["images/train/tr.jpg"]
    assert report["leaked_copies_dropped"] == []
