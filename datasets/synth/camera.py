"""A pinhole camera in street coordinates.

World frame (metres): x runs along the street, y points to the left of a driver facing +x,
z points up; the ground is z = 0. Camera frame: x right, y down, z forward (OpenCV's).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Points closer than this in front of the camera are clipped away (metres).
NEAR_PLANE_M = 0.1


@dataclass(frozen=True)
class PinholeCamera:
    """A camera with square pixels and the principal point at the image centre.

    Attributes:
        width: Image width in pixels.
        height: Image height in pixels.
        hfov_deg: Horizontal field of view in degrees.
        position: Camera centre (x, y, z) in metres.
        yaw_deg: Heading, counter-clockwise from +x (0 looks along the street, -90 looks at
            the right-hand sidewalk).
        pitch_deg: Elevation of the optical axis; negative looks down.
        window: For a camera that sees a window of a larger image: the larger image's focal
            length and principal point (see :meth:`crop`). None for a whole image.
    """

    width: int
    height: int
    hfov_deg: float
    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    window: tuple[float, float, float] | None = None

    @cached_property
    def focal_px(self) -> float:
        """Focal length in pixels."""
        if self.window is not None:
            return self.window[0]
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def cx(self) -> float:
        """Principal point column."""
        return self.window[1] if self.window is not None else self.width / 2

    @property
    def cy(self) -> float:
        """Principal point row."""
        return self.window[2] if self.window is not None else self.height / 2

    def crop(self, x0: int, y0: int, width: int, height: int) -> PinholeCamera:
        """The same camera seeing only the pixel window starting at (x0, y0); the window may
        extend beyond the image."""
        return replace(self, width=width, height=height,
                       window=(self.focal_px, self.cx - x0, self.cy - y0))

    @cached_property
    def rotation(self) -> FloatArray:
        """3x3 world-to-camera rotation (rows: camera right, down, forward in world axes)."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw),
                            math.sin(pitch)])
        right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    @cached_property
    def _origin(self) -> FloatArray:
        return np.array(self.position, dtype=np.float64)

    def to_camera(self, points: FloatArray) -> FloatArray:
        """(N, 3) world points -> (N, 3) camera-frame points (z is depth along the axis)."""
        offset = np.asarray(points, dtype=np.float64) - self._origin
        camera_points: FloatArray = offset @ self.rotation.T
        return camera_points

    def project(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project world points.

        Returns:
            (N, 2) pixel coordinates and (N,) depths in metres; pixels of points behind the
            near plane are meaningless (check the depth).
        """
        cam = self.to_camera(points)
        depth = cam[:, 2]
        safe = np.where(depth > NEAR_PLANE_M, depth, NEAR_PLANE_M)
        return self.image_points(cam, safe), depth

    def project_polygon(self, polygon: FloatArray) -> tuple[FloatArray, float] | None:
        """Project a planar 3D polygon, clipped at the near plane.

        Returns:
            (K, 2) pixel polygon and its mean depth, or None when nothing is in front.
        """
        cam = self.to_camera(polygon)
        clipped = _clip_near(cam)
        if len(clipped) < 3:
            return None
        return self.image_points(clipped, clipped[:, 2]), float(clipped[:, 2].mean())

    def project_polyline(self, line: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """Project a 3D polyline, split where it passes behind the near plane.

        Returns:
            Pieces, each (K, 2) pixels with (K,) depths.
        """
        cam = self.to_camera(line)
        if len(cam) >= 2 and cam[:, 2].min() > NEAR_PLANE_M:  # all in front: one piece
            return [self._pixels(cam)]
        pieces: list[tuple[FloatArray, FloatArray]] = []
        current: list[FloatArray] = []
        for a, b in itertools.pairwise(cam):
            a_in, b_in = a[2] > NEAR_PLANE_M, b[2] > NEAR_PLANE_M
            if a_in:
                if not current:
                    current.append(a)
                if b_in:
                    current.append(b)
                    continue
                current.append(_cut(a, b))
            elif b_in:
                current = [_cut(a, b), b]
                continue
            if len(current) >= 2:
                pieces.append(self._pixels(np.array(current)))
            current = []
        if len(current) >= 2:
            pieces.append(self._pixels(np.array(current)))
        return pieces

    def _pixels(self, cam: FloatArray) -> tuple[FloatArray, FloatArray]:
        return self.image_points(cam, cam[:, 2]), cam[:, 2]

    def image_points(self, cam: FloatArray, depth: FloatArray) -> FloatArray:
        """Pixels (..., 2) of camera-frame points (..., 3) divided by ``depth`` (...,):
        ``f * x / depth + cx`` and the same for y."""
        pixels: FloatArray = self.focal_px * cam[..., :2] / depth[..., None] + self._principal
        return pixels

    @cached_property
    def _principal(self) -> FloatArray:
        return np.array([self.cx, self.cy])

    def sees_boxes(self, lows: FloatArray, highs: FloatArray) -> npt.NDArray[np.bool_]:
        """For (N, 3) axis-aligned world boxes ``lows..highs``, whether any part of each can
        be in view. Conservative: False only when a whole box is behind the camera or wholly
        beyond one edge of the view."""
        pick = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])  # (8, 3)
        bounds = np.stack([lows, highs], axis=1)  # (N, 2, 3)
        corners = bounds[:, pick, np.arange(3)]  # (N, 8, 3)
        cam = self.to_camera(corners.reshape(-1, 3)).reshape(-1, 8, 3)
        depth = cam[..., 2]
        seen: npt.NDArray[np.bool_] = depth.max(axis=1) > NEAR_PLANE_M
        f = self.focal_px
        for axis, centre, size in ((0, self.cx, self.width), (1, self.cy, self.height)):
            low_edge, high_edge = -centre / f, (size - centre) / f
            seen &= ~np.all(cam[..., axis] < low_edge * depth, axis=1)
            seen &= ~np.all(cam[..., axis] > high_edge * depth, axis=1)
        return seen

    def horizon_row(self) -> float:
        """Image row of the horizon (may lie outside the image)."""
        return self.cy + self.focal_px * math.tan(math.radians(self.pitch_deg))


def _cut(a: FloatArray, b: FloatArray) -> FloatArray:
    """The point between camera-frame points a and b where depth equals the near plane."""
    t = float((NEAR_PLANE_M - a[2]) / (b[2] - a[2]))
    cut: FloatArray = a + t * (b - a)
    return cut


def _clip_near(polygon: FloatArray) -> FloatArray:
    """Sutherland-Hodgman clipping of a camera-frame polygon to depth > NEAR_PLANE_M."""
    if polygon[:, 2].min() > NEAR_PLANE_M:
        return polygon
    out: list[FloatArray] = []
    count = len(polygon)
    for index in range(count):
        current, following = polygon[index], polygon[(index + 1) % count]
        current_in, following_in = current[2] > NEAR_PLANE_M, following[2] > NEAR_PLANE_M
        if current_in:
            out.append(current)
        if current_in != following_in:
            out.append(_cut(current, following))
    return np.array(out) if out else np.zeros((0, 3))
