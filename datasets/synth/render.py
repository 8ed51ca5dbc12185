"""Rasterise scene objects through a pinhole camera, and label what stays visible.

Objects are drawn far to near (painter's algorithm) into the image, an object-id buffer and
a depth buffer. An object's label is the tight box of its pixels left in the id buffer; it
gets no label when less than ``MIN_VISIBLE_FRACTION`` of its full silhouette (drawn alone,
also outside the frame) survives occlusion and the frame edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from streetwatch.datasets.synth.camera import NEAR_PLANE_M, FloatArray, PinholeCamera

MIN_VISIBLE_FRACTION = 0.3
MIN_BOX_SIDE_PX = 4
# Silhouettes are measured on a canvas at most this many frames wide around the image.
_SILHOUETTE_MARGIN = 1.0

Colour = tuple[float, float, float]
UInt8Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Face:
    """A flat polygon of uniform colour. ``points``: (K, 3) world metres; ``colour``: BGR."""

    points: FloatArray
    colour: Colour


# Faces of a box whose corners are ordered bottom 0-3 then top 4-7 (same order around).
_BOX_FACES = ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7), (4, 5, 6, 7))


@dataclass(frozen=True)
class Box:
    """A convex box: ``points`` (8, 3), bottom four corners then the top four in the same
    order around. Only the faces turned towards the camera are drawn, which also keeps a
    box's own faces in the right order."""

    points: FloatArray
    colour: Colour
    has_top: bool = True

    @property
    def face_indices(self) -> tuple[tuple[int, int, int, int], ...]:
        """Corner indices of the faces drawn: the sides, and the top unless left open."""
        return _BOX_FACES if self.has_top else _BOX_FACES[:4]

    def faces(self) -> list[FloatArray]:
        """The faces (no bottom) as (4, 3) polygons."""
        return [self.points[list(face)] for face in self.face_indices]


@dataclass(frozen=True)
class Line:
    """A polyline of constant world thickness (a cable, a pole seen thin)."""

    points: FloatArray
    colour: Colour
    thickness_m: float


@dataclass(frozen=True)
class Decal:
    """A texture mapped onto a world quad. ``quad``: (4, 3) corners in the texture's order
    top-left, top-right, bottom-right, bottom-left; ``texture``: HxWx3 uint8 BGR, or a
    function making it, called only if the decal is drawn (most facade signs are not seen)."""

    quad: FloatArray
    texture: UInt8Image | Callable[[], UInt8Image]
    colour: Colour = (200.0, 200.0, 200.0)

    @property
    def points(self) -> FloatArray:
        """The quad, for code that treats every flat primitive alike."""
        return self.quad

    def image(self) -> UInt8Image:
        """The texture, made now if it is made lazily."""
        return self.texture() if callable(self.texture) else self.texture


Primitive = Face | Box | Line | Decal


@dataclass
class SceneObject:
    """Something drawn in a scene.

    Attributes:
        kind: What it is (``car``, ``bollard``, ``poster``...), for truth files and debugging.
        class_key: Taxonomy key it is labelled as, or None for scenery and hard negatives.
        anchor: World point used to order drawing by distance (its footprint centre).
        primitives: What to draw, back to front within the object.
        layer: Drawing layer: 0 sky and facades, 1 ground, 2 ground markings, 3 objects.
            Lower layers are drawn first whatever their distance.
    """

    kind: str
    class_key: str | None
    anchor: tuple[float, float, float]
    primitives: list[Primitive] = field(default_factory=list)
    layer: int = 3


def _bounds(objects: Sequence[SceneObject]) -> tuple[FloatArray, FloatArray]:
    """(N, 3) lows and highs of the world-space axis-aligned bounds of objects that have
    primitives (lines padded by their thickness), in one numpy pass for all of them."""
    if not objects:
        return np.zeros((0, 3)), np.zeros((0, 3))
    points = np.concatenate([p.points for obj in objects for p in obj.primitives])
    sizes = [sum(len(p.points) for p in obj.primitives) for obj in objects]
    starts = np.cumsum([0, *sizes[:-1]])
    pads = np.array([max((p.thickness_m for p in obj.primitives if isinstance(p, Line)),
                         default=0.0) for obj in objects])[:, None]
    return (np.minimum.reduceat(points, starts, axis=0) - pads,
            np.maximum.reduceat(points, starts, axis=0) + pads)


@dataclass(frozen=True)
class Label:
    """A visible labelled object: taxonomy key, index into the scene's objects, pixel box
    (x1, y1, x2, y2), the visible fraction of its silhouette, and what the object is (its
    ``SceneObject.kind``: ``stall``, ``cart``, ``car``...)."""

    class_key: str
    object_index: int
    xyxy: tuple[int, int, int, int]
    visible_fraction: float
    object_kind: str


@dataclass
class Rendered:
    """A rendered frame: BGR image, per-pixel object index (-1 for none), per-pixel depth in
    metres (inf for sky; None when rendered without depth), and the labels."""

    image: UInt8Image
    object_index: npt.NDArray[np.int32]
    depth: npt.NDArray[np.float32] | None
    labels: list[Label]


def _shade(colour: Colour, points: FloatArray, light: FloatArray) -> Colour:
    """Lambert shading of a face by the angle between its normal and the light."""
    if len(points) < 3:
        return colour
    (ax, ay, az), (bx, by, bz) = points[1] - points[0], points[2] - points[0]
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    if norm < 1e-12:
        return colour
    factor = 0.55 + 0.45 * abs(float(nx * light[0] + ny * light[1] + nz * light[2]) / norm)
    return (colour[0] * factor, colour[1] * factor, colour[2] * factor)


def _percentile_33(values: list[float]) -> float:
    """``float(np.percentile(values, 33))`` to the last bit (numpy's linear method, its
    rounding included), without numpy's overhead on a handful of values."""
    ordered = sorted(values)
    virtual = (len(ordered) - 1) * 0.33
    below = math.floor(virtual)
    if below >= len(ordered) - 1:
        return ordered[-1]
    gamma = virtual - below
    low, high = ordered[below], ordered[below + 1]
    step = high - low
    # numpy interpolates from the nearer neighbour's side.
    return high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma


def _cross(a: FloatArray, b: FloatArray) -> FloatArray:
    """``np.cross`` of (..., 3) arrays, the same products and differences without its
    generic-axis overhead (which cost more than the arithmetic on a few boxes)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


# Decals smaller than this on screen are drawn as a flat patch of their colour.
_MIN_TEXTURED_PX = 4


@dataclass(frozen=True)
class _PreparedBox:
    """A box projected: whether all corners are in front of the near plane, which of the
    five faces turn to the camera, the faces as pixel polygons (5, 4, 2) in 1/16 px, their
    depths, and their shaded colours (empty when only drawing masks)."""

    in_front: bool
    visible: list[bool]
    polygons: npt.NDArray[np.int32]
    face_depths: list[float]
    colours: list[Colour]


class _Canvas:
    """Image, object-id and optional depth buffers, handed over by the caller and drawn on
    in place; ``mask_only`` draws object ids alone (for silhouettes), which skips shading
    and texture mapping."""

    def __init__(self, camera: PinholeCamera, background: UInt8Image,
                 ids: npt.NDArray[np.int32] | npt.NDArray[np.uint8],
                 depth: npt.NDArray[np.float32] | None, light: FloatArray,
                 mask_only: bool = False) -> None:
        self.camera = camera
        self.mask_only = mask_only
        self.image = background
        self.ids = ids
        self.depth = depth
        self.light = light

    def draw(self, index: int, obj: SceneObject) -> None:
        boxes = [p for p in obj.primitives if isinstance(p, Box)]
        prepared = iter(self._prepare_boxes(boxes)) if boxes else iter(())
        for primitive in obj.primitives:
            if isinstance(primitive, Face):
                self._face(index, primitive)
            elif isinstance(primitive, Box):
                self._box(index, primitive, next(prepared))
            elif isinstance(primitive, Line):
                self._line(index, primitive)
            else:
                self._decal(index, primitive)

    def _prepare_boxes(self, boxes: list[Box]) -> list[_PreparedBox]:
        """Project all of an object's boxes and find their front faces in one numpy pass
        (per-box numpy calls dominated drawing time)."""
        corners = np.stack([b.points for b in boxes])  # (B, 8, 3)
        camera_points = self.camera.to_camera(corners.reshape(-1, 3)).reshape(-1, 8, 3)
        faces = corners[:, np.array(_BOX_FACES)]  # (B, 5, 4, 3)
        edge_a = faces[:, :, 1] - faces[:, :, 0]
        edge_b = faces[:, :, 2] - faces[:, :, 0]
        normals = _cross(edge_a, edge_b)
        centres = faces.mean(axis=2)
        outward = np.sign(np.einsum("bfk,bfk->bf", normals,
                                    centres - corners.mean(axis=1)[:, None, :]))
        visible = np.einsum("bfk,bfk->bf", normals, self.camera._origin - centres) * outward > 0
        depth = camera_points[..., 2]
        safe = np.where(depth > NEAR_PLANE_M, depth, 1.0)
        fixed = np.round(self.camera.image_points(camera_points, safe) * 16).astype(np.int32)
        polygons = np.ascontiguousarray(fixed[:, np.array(_BOX_FACES)])  # (B, 5, 4, 2)
        face_depths = depth[:, np.array(_BOX_FACES)].mean(axis=2).tolist()
        in_front = (depth.min(axis=1) > NEAR_PLANE_M).tolist()
        colours = ([[] for _ in boxes] if self.mask_only
                   else self._shade_faces(normals, [b.colour for b in boxes]))
        visible_lists = visible.tolist()
        return [_PreparedBox(in_front[i], visible_lists[i], polygons[i], face_depths[i],
                             colours[i]) for i in range(len(boxes))]

    def _shade_faces(self, normals: FloatArray, colours: list[Colour]) -> list[list[Colour]]:
        """``_shade`` of every face at once, (B, 5, 3) normals, with the same operations in
        the same order, so that the colours are equal to the last bit."""
        nx, ny, nz = normals[..., 0], normals[..., 1], normals[..., 2]
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        light = self.light
        dot = nx * light[0] + ny * light[1] + nz * light[2]
        flat = norm < 1e-12
        factor = 0.55 + 0.45 * np.abs(dot / np.where(flat, 1.0, norm))
        factor[flat] = 1.0  # a degenerate face keeps its colour
        shaded = np.array(colours)[:, None, :] * factor[..., None]  # (B, 5, 3)
        return [[(r, g, b) for r, g, b in box] for box in shaded.tolist()]

    def _face(self, index: int, face: Face | Decal) -> None:
        projected = self.camera.project_polygon(face.points)
        if projected is None:
            return
        pixels, depth = projected
        polygon = [np.round(pixels * 16).astype(np.int32)]
        cv2.fillPoly(self.ids, polygon, index, cv2.LINE_8, shift=4)
        if self.mask_only:
            return
        colour = _shade(face.colour, face.points, self.light)
        cv2.fillPoly(self.image, polygon, colour, cv2.LINE_AA, shift=4)
        if self.depth is not None:
            cv2.fillPoly(self.depth, polygon, depth, cv2.LINE_8, shift=4)

    def _box(self, index: int, box: Box, prepared: _PreparedBox) -> None:
        faces = _BOX_FACES if box.has_top else _BOX_FACES[:4]
        if not prepared.in_front:
            for number, face in enumerate(faces):
                if prepared.visible[number]:  # partly behind the camera: clip face by face
                    self._face(index, Face(box.points[list(face)], box.colour))
            return
        for number in range(len(faces)):
            if not prepared.visible[number]:
                continue
            polygon = [prepared.polygons[number]]
            cv2.fillPoly(self.ids, polygon, index, cv2.LINE_8, shift=4)
            if self.mask_only:
                continue
            cv2.fillPoly(self.image, polygon, prepared.colours[number], cv2.LINE_AA, shift=4)
            if self.depth is not None:
                cv2.fillPoly(self.depth, polygon, prepared.face_depths[number], cv2.LINE_8,
                             shift=4)

    def _line(self, index: int, line: Line) -> None:
        # Each piece is drawn as one polyline at the thickness of its nearest third: a cable's
        # thickness varies little along its length, and one call per piece instead of one
        # per segment made lines cheap.
        f = self.camera.focal_px
        height, width = self.image.shape[:2]
        for pixels, depths in self.camera.project_polyline(line.points):
            (low_x, low_y), (high_x, high_y) = pixels.min(axis=0), pixels.max(axis=0)
            if high_x < -width or low_x > 2 * width or high_y < -height or low_y > 2 * height:
                continue
            depth = _percentile_33(depths.tolist())
            thickness = max(1, round(f * line.thickness_m / depth))
            points = [np.round(pixels * 16).astype(np.int32)]
            cv2.polylines(self.ids, points, False, index, thickness, cv2.LINE_8, shift=4)
            if self.mask_only:
                continue
            cv2.polylines(self.image, points, False, line.colour, thickness, cv2.LINE_AA,
                          shift=4)
            if self.depth is not None:
                cv2.polylines(self.depth, points, False, depth, thickness, cv2.LINE_8, shift=4)

    def _decal(self, index: int, decal: Decal) -> None:
        pixels, depths = self.camera.project(decal.quad)
        if min(depths.tolist()) <= 0.5:
            return  # too close to map stably; such decals are never labelled anyway
        # Four corners: plain Python is quicker than numpy calls (and exact: min, max, floor).
        xs, ys = pixels[:, 0].tolist(), pixels[:, 1].tolist()
        low_x, low_y, high_x, high_y = min(xs), min(ys), max(xs), max(ys)
        if self.mask_only or min(high_x - low_x, high_y - low_y) < _MIN_TEXTURED_PX:
            self._face(index, decal)
            return
        height, width = self.image.shape[:2]
        x1, y1 = max(math.floor(low_x), 0), max(math.floor(low_y), 0)
        x2, y2 = min(math.ceil(high_x), width), min(math.ceil(high_y), height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return
        texture = decal.image()
        th, tw = texture.shape[:2]
        source = np.array([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]], np.float32)
        target = (pixels - np.array([x1, y1])).astype(np.float32)
        matrix = cv2.getPerspectiveTransform(source, target)
        region = np.ascontiguousarray(self.image[y1:y2, x1:x2])
        # BORDER_TRANSPARENT leaves pixels outside the quad as they were.
        cv2.warpPerspective(texture, matrix, (x2 - x1, y2 - y1), dst=region,
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        self.image[y1:y2, x1:x2] = region
        polygon = [np.round(pixels * 16).astype(np.int32)]
        cv2.fillPoly(self.ids, polygon, index, cv2.LINE_8, shift=4)
        if self.depth is not None:
            cv2.fillPoly(self.depth, polygon, float(depths.mean()), cv2.LINE_8, shift=4)


def _extent(camera: PinholeCamera, obj: SceneObject) -> tuple[int, int, int, int] | None:
    """Pixel bounds of everything the object projects in front of the camera."""
    points: list[FloatArray] = []
    pad = 2.0
    for primitive in obj.primitives:
        if isinstance(primitive, Line):
            for pixels, depths in camera.project_polyline(primitive.points):
                points.append(pixels)
                pad = max(pad, float(camera.focal_px * primitive.thickness_m / depths.min()))
        elif isinstance(primitive, Box):
            pixels, depths = camera.project(primitive.points)
            if depths.min() > NEAR_PLANE_M:
                points.append(pixels)
                continue
            for face in primitive.faces():
                projected = camera.project_polygon(face)
                if projected is not None:
                    points.append(projected[0])
        else:
            projected = camera.project_polygon(primitive.points)
            if projected is not None:
                points.append(projected[0])
    if not points:
        return None
    every = np.concatenate(points)
    x1, y1 = np.floor(every.min(axis=0) - pad)
    x2, y2 = np.ceil(every.max(axis=0) + pad)
    return int(x1), int(y1), int(x2), int(y2)


def silhouette_area(camera: PinholeCamera, obj: SceneObject,
                    extent: tuple[int, int, int, int] | None = None) -> int:
    """Pixels the object would cover drawn alone on an unbounded image (clamped to a margin
    of one frame around the image), so that cut-off parts count as hidden.

    Args:
        camera: The camera.
        obj: The object.
        extent: The object's pixel bounds if already known (see ``_extent``).
    """
    extent = extent or _extent(camera, obj)
    if extent is None:
        return 0
    margin_x = int(camera.width * _SILHOUETTE_MARGIN)
    margin_y = int(camera.height * _SILHOUETTE_MARGIN)
    x1, y1 = max(extent[0], -margin_x), max(extent[1], -margin_y)
    x2 = min(extent[2], camera.width + margin_x)
    y2 = min(extent[3], camera.height + margin_y)
    if x2 <= x1 or y2 <= y1:
        return 0
    window = camera.crop(x1, y1, x2 - x1, y2 - y1)
    # One object, drawn as id 0 into uint8 ids (255 for none): the window can be several
    # frames big, and a quarter of the memory traffic of int32 ids.
    ids = np.full((y2 - y1, x2 - x1), 255, np.uint8)
    canvas = _Canvas(window, np.zeros((y2 - y1, x2 - x1, 1), np.uint8), ids, None,
                     np.array([0.0, 0.0, 1.0]), mask_only=True)
    canvas.draw(0, obj)
    return int(np.count_nonzero(ids == 0))


def render(
    camera: PinholeCamera,
    objects: Sequence[SceneObject],
    background: UInt8Image,
    light: FloatArray | None = None,
    min_box_px: float = MIN_BOX_SIDE_PX,
    with_depth: bool = True,
) -> Rendered:
    """Draw ``objects`` over ``background`` and label the visible labelled ones.

    Args:
        camera: The camera.
        objects: Everything in the scene.
        background: HxWx3 BGR image drawn first (the sky); left untouched.
        light: Unit vector towards the main light, for face shading.
        min_box_px: Visible boxes narrower or shorter than this get no label (still drawn).
        with_depth: Also draw the depth buffer (a third of the drawing; the image, ids and
            labels do not depend on it).
    """
    light = np.array([0.3, -0.4, 0.87]) if light is None else light
    ids = np.full(background.shape[:2], -1, np.int32)
    depth = np.full(background.shape[:2], np.inf, np.float32) if with_depth else None
    canvas = _Canvas(camera, background.copy(), ids, depth, light / np.linalg.norm(light))
    position = np.array(camera.position)
    drawable = [i for i, obj in enumerate(objects) if obj.primitives]
    seen = camera.sees_boxes(*_bounds([objects[i] for i in drawable]))
    in_view = [i for i, visible in zip(drawable, seen, strict=True) if visible]

    def distance(i: int) -> float:  # np.linalg.norm's arithmetic, without its overhead
        offset = np.array(objects[i].anchor) - position
        return math.sqrt(offset.dot(offset))

    order = sorted(in_view, key=lambda i: (objects[i].layer, -distance(i)))
    for index in order:
        canvas.draw(index, objects[index])
    labels = _labels(camera, [(i, objects[i]) for i in sorted(in_view)], ids, min_box_px)
    return Rendered(canvas.image, ids, depth, labels)


def _labels(camera: PinholeCamera, drawn: list[tuple[int, SceneObject]],
            ids: npt.NDArray[np.int32], min_box_px: float) -> list[Label]:
    """Labels of the drawn labelled objects, given as (index in the scene, object)."""
    labels: list[Label] = []
    height, width = ids.shape
    for index, obj in drawn:
        extent = _extent(camera, obj) if obj.class_key is not None else None
        if obj.class_key is None or extent is None:
            continue
        left, top = max(extent[0], 0), max(extent[1], 0)
        right, bottom = min(extent[2], width), min(extent[3], height)
        if right <= left or bottom <= top:
            continue
        ys, xs = np.nonzero(ids[top:bottom, left:right] == index)
        if len(xs) == 0:
            continue
        x1, y1 = int(xs.min()) + left, int(ys.min()) + top
        x2, y2 = int(xs.max()) + 1 + left, int(ys.max()) + 1 + top
        if x2 - x1 < min_box_px or y2 - y1 < min_box_px:
            continue
        full = silhouette_area(camera, obj, extent)
        fraction = len(xs) / full if full else 0.0
        if fraction >= MIN_VISIBLE_FRACTION:
            labels.append(Label(obj.class_key, index, (x1, y1, x2, y2), min(1.0, fraction),
                                obj.kind))
    return labels
