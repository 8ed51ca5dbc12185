"""The camera and renderer of the synthetic scenes: perspective, occlusion, cut-off."""

from __future__ import annotations

import numpy as np
import pytest

from streetwatch.datasets.synth.camera import PinholeCamera
from streetwatch.datasets.synth.render import Face, Line, SceneObject, render

CAMERA = PinholeCamera(640, 360, 70.0, (0.0, 0.0, 1.5), 0.0, 0.0)
SKY = np.full((360, 640, 3), 200, np.uint8)


def _panel(x: float, y: float, width: float, height: float, key: str | None,
           bottom: float = 0.0) -> SceneObject:
    """A vertical panel facing the camera, ``width`` across y, from ``bottom`` to ``height``."""
    face = np.array([[x, y - width / 2, bottom], [x, y + width / 2, bottom],
                     [x, y + width / 2, height], [x, y - width / 2, height]])
    return SceneObject("panel", key, (x, y, 0.0), [Face(face, (0.0, 0.0, 200.0))])


def test_axis_point_projects_to_the_centre_and_horizon() -> None:
    pixels, depth = CAMERA.project(np.array([[10.0, 0.0, 1.5]]))
    assert pixels[0] == pytest.approx([320, 180])
    assert depth[0] == pytest.approx(10.0)
    tilted = PinholeCamera(640, 360, 70.0, (0.0, 0.0, 6.0), 0.0, -30.0)
    assert tilted.horizon_row() < 0  # looking down 30 degrees with a 39-degree vertical fov


def test_crop_sees_the_same_rays() -> None:
    point = np.array([[12.0, 1.0, 0.3]])
    full, _ = CAMERA.project(point)
    window, _ = CAMERA.crop(100, 50, 200, 100).project(point)
    assert window[0] == pytest.approx(full[0] - [100, 50])


@pytest.mark.parametrize("distance", [8.0, 15.0, 30.0])
def test_twice_as_far_is_half_as_tall(distance: float) -> None:
    near = render(CAMERA, [_panel(distance, 0.0, 1.0, 1.5, "vehicle")], SKY).labels[0]
    far = render(CAMERA, [_panel(2 * distance, 0.0, 1.0, 1.5, "vehicle")], SKY).labels[0]
    near_height = near.xyxy[3] - near.xyxy[1]
    far_height = far.xyxy[3] - far.xyxy[1]
    assert near_height / far_height == pytest.approx(2.0, rel=0.06)


def test_label_is_the_visible_part_of_a_partly_hidden_object() -> None:
    target = _panel(20.0, 0.0, 2.0, 1.5, "street_vending")
    # A nearer unlabelled wall hides the left half (y > 0 is left in the image).
    wall = _panel(10.0, 0.5, 1.0, 3.0, None)
    rendered = render(CAMERA, [target, wall], SKY)
    (label,) = rendered.labels
    alone = render(CAMERA, [target], SKY).labels[0]
    assert label.xyxy[2] == alone.xyxy[2] and label.xyxy[0] > alone.xyxy[0]
    assert label.visible_fraction == pytest.approx(0.5, abs=0.05)
    assert (label.object_kind, label.object_index) == ("panel", 0)  # what was hidden


def test_mostly_hidden_object_gets_no_label() -> None:
    target = _panel(20.0, 0.0, 2.0, 1.5, "ground_lock")
    wall = _panel(10.0, 0.2, 1.0, 3.0, None)  # hides about 80 percent
    rendered = render(CAMERA, [target, wall], SKY)
    assert rendered.labels == []
    # It is still drawn: its pixels are in the id buffer.
    assert np.count_nonzero(rendered.object_index == 0) > 0


def test_object_mostly_outside_the_frame_gets_no_label() -> None:
    # The right edge of the view at 10 m is y = -10 * tan(35 deg) = -7.0 m.
    mostly_out = _panel(10.0, -7.6, 1.5, 1.5, "vehicle")
    half_out = _panel(10.0, -7.0, 1.5, 1.5, "vehicle")
    assert render(CAMERA, [mostly_out], SKY).labels == []
    (label,) = render(CAMERA, [half_out], SKY).labels
    assert label.xyxy[2] == CAMERA.width
    assert label.visible_fraction == pytest.approx(0.5, abs=0.05)


def test_geometry_behind_the_camera_is_clipped_not_mirrored() -> None:
    ground = Face(np.array([[-5.0, -3.0, 0.0], [30.0, -3.0, 0.0], [30.0, 3.0, 0.0],
                            [-5.0, 3.0, 0.0]]), (90.0, 90.0, 90.0))
    cable = Line(np.array([[-5.0, 0.0, 4.0], [30.0, 0.0, 4.0]]), (20.0, 20.0, 20.0), 0.02)
    rendered = render(CAMERA, [SceneObject("road", None, (10.0, 0.0, 0.0), [ground], layer=1),
                               SceneObject("cable", None, (10.0, 0.0, 4.0), [cable])], SKY)
    horizon = int(CAMERA.horizon_row())
    # Road pixels only below the horizon, cable pixels only above it.
    road_rows = np.nonzero((rendered.object_index == 0).any(axis=1))[0]
    cable_rows = np.nonzero((rendered.object_index == 1).any(axis=1))[0]
    assert road_rows.min() >= horizon - 1 and road_rows.max() == CAMERA.height - 1
    assert cable_rows.max() <= horizon + 1
