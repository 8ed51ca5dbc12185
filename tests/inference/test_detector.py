"""The onnxruntime detector on a hand-built ONNX model whose output we choose anchor by
anchor: thresholds, class-aware NMS, letterbox undoing, batching and bad models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fixed_onnx import anchor, fixed_model

from streetwatch.inference.detector import Detector, DetectorConfig, ModelError, letterbox
from streetwatch.models.taxonomy import TAXONOMY

VENDING, PARKING, VEHICLE = (TAXONOMY.by_key(k).id for k in
                             ("street_vending", "illegal_parking", "vehicle"))


def image(width: int = 200, height: int = 100) -> npt.NDArray[np.uint8]:
    return np.zeros((height, width, 3), np.uint8)


def test_boxes_come_back_in_original_pixels(tmp_path: Path) -> None:
    # 200x100 -> scale 0.32, 64x32 placed 16 px from the top of the 64x64 input
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 32, 16, 8, VEHICLE, 0.9)])
    (found,) = Detector.open(model, config=DetectorConfig(rect=False))([image()])
    assert found.class_id.tolist() == [VEHICLE]
    np.testing.assert_allclose(found.xyxy[0], [75, 37.5, 125, 62.5], atol=1e-4)
    assert found.confidence[0] == pytest.approx(0.9)


def test_rectangular_input_skips_the_padding(tmp_path: Path) -> None:
    # 200x100 -> 64x32 at scale 0.32: no padding at all, the box maps straight back
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 16, 16, 8, VEHICLE, 0.9)])
    (found,) = Detector.open(model)([image()])
    np.testing.assert_allclose(found.xyxy[0], [75, 37.5, 125, 62.5], atol=1e-4)


def test_a_model_exported_with_a_fixed_input_gets_square_inputs_at_its_size(
        tmp_path: Path) -> None:
    # ultralytics exports a static 1x3xSxS input unless told otherwise: a 2:1 frame must
    # then be padded to the square (rect would hand it 64x32), one image a call
    model = fixed_model(tmp_path / "static.onnx", [anchor(32, 32, 16, 8, VEHICLE, 0.9)],
                        input_shape=(1, 3, 64, 64))
    found = Detector.open(model, config=DetectorConfig(batch=4))([image(), image()])
    for each in found:
        np.testing.assert_allclose(each.xyxy[0], [75, 37.5, 125, 62.5], atol=1e-4)
    with pytest.raises(ModelError, match=r"static\.onnx: its input is fixed at 64x64, so it "
                                         r"cannot run at 128 px"):
        Detector.open(model, imgsz=128)
    batched = fixed_model(tmp_path / "b4.onnx", [anchor(32, 32, 16, 8, VEHICLE, 0.9)],
                          input_shape=(4, 3, 64, 64))
    with pytest.raises(ModelError, match=r"b4\.onnx: its input batch is fixed at 4"):
        Detector.open(batched)
    flat = fixed_model(tmp_path / "flat.onnx", [anchor(32, 32, 16, 8, VEHICLE, 0.9)],
                       input_shape=("n", 4096))
    with pytest.raises(ModelError, match=r"flat\.onnx: its input has shape \['n', 4096\], "
                                         r"not images"):
        Detector.open(flat)


def test_an_input_size_off_the_stride_is_refused(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 32, 16, 8, VEHICLE, 0.9)])
    with pytest.raises(ModelError, match=r"m\.onnx: input size 100 is not a multiple of the "
                                         r"model's stride \(32\)"):
        Detector.open(model, imgsz=100)
    assert Detector.open(model, imgsz=96).info.imgsz == 96


def test_nms_is_per_class(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [
        anchor(30, 30, 20, 20, VEHICLE, 0.9),
        anchor(31, 30, 20, 20, VEHICLE, 0.8),   # same object, same class: suppressed
        anchor(31, 31, 20, 20, PARKING, 0.7),   # same place, other class: kept
    ])
    (found,) = Detector.open(model)([image(64, 64)])
    pairs = zip(found.class_id.tolist(), (round(float(c), 2) for c in found.confidence),
                strict=True)
    assert sorted(pairs) == [(PARKING, 0.7), (VEHICLE, 0.9)]


def test_per_class_threshold_and_min_size(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [
        anchor(10, 10, 8, 8, VENDING, 0.5),
        anchor(40, 40, 8, 8, VEHICLE, 0.5),
        anchor(50, 20, 2, 2, VEHICLE, 0.9),      # 2 px: below min_box_px
    ])
    config = DetectorConfig(conf=0.3, class_conf={"street_vending": 0.6}, min_box_px=4)
    (found,) = Detector.open(model, config=config)([image(64, 64)])
    assert found.class_id.tolist() == [VEHICLE] and found.confidence[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown class"):
        Detector.open(model, config=DetectorConfig(class_conf={"bollard": 0.5}))


def test_a_stall_part_inside_a_stall_is_dropped_a_car_behind_a_car_is_not(
        tmp_path: Path) -> None:
    """A table boxed alone inside its whole stall overlaps it little (IoU 0.25: NMS keeps
    it), but lies wholly inside it; street_vending drops such boxes by default, other
    classes keep them."""
    model = fixed_model(tmp_path / "m.onnx", [
        anchor(20, 20, 20, 20, VENDING, 0.9),   # the whole stall
        anchor(22, 24, 10, 10, VENDING, 0.8),   # its table, inside it: dropped
        anchor(45, 45, 20, 20, VEHICLE, 0.9),   # a car
        anchor(47, 47, 10, 10, VEHICLE, 0.8),   # a car behind it, inside its box: kept
        anchor(10, 50, 10, 10, VENDING, 0.95),  # a stall inside nothing
        anchor(13, 53, 16, 16, VENDING, 0.7),   # around the one above, 39 % inside it: kept
    ])
    found, = Detector.open(model)([image(64, 64)])
    pairs = sorted(zip(found.class_id.tolist(), (round(float(c), 2) for c in found.confidence),
                       strict=True))
    assert pairs == [(VENDING, 0.7), (VENDING, 0.9), (VENDING, 0.95), (VEHICLE, 0.8),
                     (VEHICLE, 0.9)]
    off, = Detector.open(model, config=DetectorConfig(class_contain={}))([image(64, 64)])
    assert len(off) == 6
    strict, = Detector.open(model, config=DetectorConfig(
        class_contain={"street_vending": 0.2}))([image(64, 64)])
    assert sorted(round(float(c), 2) for c in strict.confidence[strict.class_id == VENDING]) \
        == [0.9, 0.95]
    with pytest.raises(ValueError, match="class_contain: unknown class"):
        Detector.open(model, config=DetectorConfig(class_contain={"bollard": 0.5}))
    with pytest.raises(ValueError, match="less than or equal to 1"):
        DetectorConfig(class_contain={"street_vending": 1.5})


def test_batches_give_one_result_per_image(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 32, 16, 16, VEHICLE, 0.9)])
    detector = Detector.open(model, config=DetectorConfig(batch=2, rect=False))
    found = detector([image(64, 64), image(128, 128), image(64, 32)])
    assert [len(d) for d in found] == [1, 1, 1]
    np.testing.assert_allclose(found[1].xyxy[0], [48, 48, 80, 80], atol=1e-4)


def test_nothing_above_threshold_is_empty(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 32, 16, 16, VEHICLE, 0.1)])
    (found,) = Detector.open(model)([image()])
    assert len(found) == 0 and found.xyxy.shape == (0, 4)


def test_letterbox_matches_ultralytics() -> None:
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    for h, w in [(100, 200), (333, 500), (480, 480), (721, 1279), (1080, 1920)]:
        picture = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        for stride in (None, 32):
            ours, _ = letterbox(picture, 96, stride)
            theirs = LetterBox((96, 96), auto=stride is not None, stride=32)(image=picture)
            np.testing.assert_array_equal(ours, theirs)


def test_a_model_with_other_classes_is_refused(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(1, 1, 1, 1, 0, 0.9)],
                        names=["person", "car", "a", "b", "c", "d"])
    with pytest.raises(ModelError, match="not the streetwatch taxonomy"):
        Detector.open(model)


def test_a_corrupt_model_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 not protobuf at all")
    with pytest.raises(ModelError, match=r"broken\.onnx: not a readable ONNX model"):
        Detector.open(broken)
    with pytest.raises(ModelError, match="model file not found"):
        Detector.open(tmp_path / "absent.onnx")


def test_views_of_one_run_detect_what_each_config_detects_alone(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "m.onnx", [anchor(32, 40, 16, 8, 1, 0.8),
                                              anchor(34, 41, 16, 8, 1, 0.5),
                                              anchor(10, 10, 6, 6, 2, 0.1)])
    loose = Detector.open(model, config=DetectorConfig(conf=0.001, iou=0.7))
    strict = loose.with_config(DetectorConfig(conf=0.25))
    image = np.full((120, 160, 3), 90, np.uint8)
    both = loose.detect_views(image, [loose, strict])
    alone = [loose([image])[0], Detector.open(model, config=DetectorConfig(conf=0.25))([image])[0]]
    assert len(both[0]) == 3 and len(both[1]) == 1  # the NMS at 0.45 drops the overlap too
    for view, single in zip(both, alone, strict=True):
        assert np.array_equal(view.xyxy, single.xyxy)
        assert np.array_equal(view.confidence, single.confidence)
        assert np.array_equal(view.class_id, single.class_id)
    other = Detector.open(model)
    with pytest.raises(ValueError, match="views"):
        loose.detect_views(image, [other])
