"""Builders of street objects as world-space primitives (metres; x along the street, y left,
z up). Each builder takes a random generator so that shape, size and colour vary, and returns
a :class:`SceneObject` labelled with its taxonomy key, or unlabelled for scenery and hard
negatives."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from streetwatch.datasets.synth.camera import FloatArray
from streetwatch.datasets.synth.render import (
    Box,
    Colour,
    Decal,
    Face,
    Line,
    Primitive,
    SceneObject,
    UInt8Image,
)
from streetwatch.datasets.synth.textures import facade_texture, poster_texture, sign_texture

Rng = np.random.Generator


class _Lazy:
    """A texture made on first use, from its own seed, so that whether and when it is drawn
    does not change any other random draw. (A plain class: most textures are never drawn,
    and wrapping a closure in ``functools.cache`` for each cost more than the few made.)"""

    def __init__(self, make: Callable[[Rng], UInt8Image], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._texture: UInt8Image | None = None

    def __call__(self) -> UInt8Image:
        if self._texture is None:
            self._texture = self._make(np.random.default_rng(self._seed))
        return self._texture


def _colour(rng: Rng, base: Colour, spread: float = 30.0) -> Colour:
    values = np.clip(np.array(base) + rng.normal(0, spread, 3), 0, 255)
    return (float(values[0]), float(values[1]), float(values[2]))


def cuboid(centre: tuple[float, float, float], size: tuple[float, float, float],
           colour: Colour, yaw: float = 0.0, has_top: bool = True) -> list[Primitive]:
    """A box standing on ``centre``'s z.

    Args:
        centre: (x, y, z_bottom).
        size: (length along yaw, width, height).
        colour: BGR.
        yaw: Rotation about z in radians.
    """
    x, y, z = centre
    length, width, height = size
    c, s = math.cos(yaw), math.sin(yaw)
    corners = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        px, py = dx * length / 2, dy * width / 2
        corners.append((x + c * px - s * py, y + s * px + c * py))
    points = np.array([[cx, cy, z] for cx, cy in corners]
                      + [[cx, cy, z + height] for cx, cy in corners])
    return [Box(points, colour, has_top)]



def _vertical_quad(x: float, y: float, z: float, width: float, height: float,
                   facing_y: bool, flip: bool = False) -> FloatArray:
    """Corners (top-left, top-right, bottom-right, bottom-left) of an upright rectangle from
    z up, in a plane of constant y (``facing_y``, spanning x) or constant x (spanning y).

    Unflipped, the texture reads correctly for a viewer looking along +y (a left-hand
    facade) or along +x (a sign facing oncoming traffic); ``flip`` mirrors it for a viewer
    looking along -y (a right-hand facade)."""
    if facing_y:
        left, right = (x + width / 2, x - width / 2) if flip else (x - width / 2, x + width / 2)
        return np.array([[left, y, z + height], [right, y, z + height],
                         [right, y, z], [left, y, z]])
    return np.array([[x, y + width / 2, z + height], [x, y - width / 2, z + height],
                     [x, y - width / 2, z], [x, y + width / 2, z]])


def car(rng: Rng, x: float, y: float, yaw: float, class_key: str | None) -> SceneObject:
    """A car: body, cabin, windows and wheels; ``class_key`` is ``vehicle`` or
    ``illegal_parking`` depending on where it stands."""
    length, width = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9)
    body_h, cabin_h = rng.uniform(0.55, 0.75), rng.uniform(0.45, 0.6)
    paint = _colour(rng, tuple(rng.choice([[40, 40, 40], [220, 220, 220], [150, 150, 150],
                                           [40, 40, 160], [140, 70, 20], [30, 90, 40]])), 15)
    clearance = 0.25
    c, s = math.cos(yaw), math.sin(yaw)
    primitives: list[Primitive] = []
    for dx in (-0.32, 0.32):
        for dy in (-0.5, 0.5):
            wx = x + c * dx * length - s * dy * width
            wy = y + s * dx * length + c * dy * width
            primitives += cuboid((wx, wy, 0.0), (0.62, 0.22, 0.6), (25, 25, 25), yaw)
    primitives += cuboid((x, y, clearance), (length, width, body_h), paint, yaw)
    cabin_colour = (paint[0] * 0.8, paint[1] * 0.8, paint[2] * 0.8)
    primitives += cuboid((x - c * 0.1 * length, y - s * 0.1 * length, clearance + body_h),
                         (length * 0.55, width * 0.9, cabin_h), cabin_colour, yaw)
    # Windows: a dark band around the cabin, slightly proud of it.
    primitives += cuboid((x - c * 0.1 * length, y - s * 0.1 * length, clearance + body_h + 0.05),
                         (length * 0.56, width * 0.92, cabin_h * 0.7), (70, 55, 45), yaw,
                         has_top=False)
    return SceneObject("car", class_key, (x, y, 0.0), primitives)


def vending_stall(rng: Rng, x: float, y: float) -> SceneObject:
    """A stall: a table with goods, often under an umbrella or a tarp on poles."""
    length, width = rng.uniform(1.2, 2.4), rng.uniform(0.7, 1.2)
    table_h = rng.uniform(0.7, 0.95)
    primitives: list[Primitive] = cuboid((x, y, 0.0), (length, width, table_h),
                                         _colour(rng, (60, 90, 140), 40))
    for _ in range(int(rng.integers(4, 12))):
        gx = x + rng.uniform(-length / 2 + 0.15, length / 2 - 0.15)
        gy = y + rng.uniform(-width / 2 + 0.1, width / 2 - 0.1)
        size = rng.uniform(0.12, 0.35)
        primitives += cuboid((gx, gy, table_h), (size, size, rng.uniform(0.08, 0.3)),
                             _colour(rng, tuple(rng.uniform(40, 230, 3)), 20))
    if rng.random() < 0.75:
        canopy_z = table_h + rng.uniform(1.0, 1.4)
        for dx in (-length / 2, length / 2):
            primitives.append(Line(np.array([[x + dx, y, 0.0], [x + dx, y, canopy_z]]),
                                   (60, 60, 60), 0.04))
        half_l, half_w = length / 2 + 0.3, width / 2 + 0.4
        cover = _colour(rng, tuple(rng.choice([[40, 40, 200], [200, 120, 30], [40, 160, 220],
                                               [60, 160, 60]])), 20)
        primitives.append(Face(np.array([[x - half_l, y - half_w, canopy_z],
                                         [x + half_l, y - half_w, canopy_z],
                                         [x + half_l, y + half_w, canopy_z + 0.25],
                                         [x - half_l, y + half_w, canopy_z + 0.25]]), cover))
    return SceneObject("stall", "street_vending", (x, y, 0.0), primitives)


def vending_cart(rng: Rng, x: float, y: float) -> SceneObject:
    """A push cart or a cargo tricycle loaded with goods."""
    length, width, height = rng.uniform(1.3, 2.0), rng.uniform(0.8, 1.1), rng.uniform(0.6, 0.9)
    primitives: list[Primitive] = []
    for dx in (-length / 3, length / 3):
        primitives += cuboid((x + dx, y - width / 2 - 0.05, 0.0), (0.5, 0.06, 0.5),
                             (30, 30, 30))
    body = _colour(rng, tuple(rng.choice([[30, 110, 200], [180, 180, 180], [40, 40, 150]])))
    primitives += cuboid((x, y, 0.35), (length, width, height), body)
    primitives += cuboid((x, y, 0.35 + height), (length * 0.9, width * 0.9, 0.25),
                         _colour(rng, tuple(rng.uniform(50, 220, 3)), 20))
    return SceneObject("cart", "street_vending", (x, y, 0.0), primitives)


def ground_lock(rng: Rng, x: float, y: float) -> SceneObject:
    """A private parking lock: a folding arch (a raised U frame) or a box with a post."""
    colour = _colour(rng, tuple(rng.choice([[20, 200, 230], [40, 40, 40], [30, 30, 200]])), 15)
    if rng.random() < 0.6:
        width, height = rng.uniform(0.45, 0.6), rng.uniform(0.3, 0.45)
        primitives: list[Primitive] = cuboid((x, y, 0.0), (0.35, width + 0.1, 0.08),
                                             (60, 60, 60))
        arch = np.array([[x, y - width / 2, 0.08], [x, y - width / 2, height],
                         [x, y + width / 2, height], [x, y + width / 2, 0.08]])
        primitives.append(Line(arch, colour, 0.05))
        kind = "lock_arch"
    else:
        primitives = cuboid((x, y, 0.0), (0.4, 0.4, 0.12), (50, 50, 50))
        primitives += cuboid((x, y, 0.12), (0.12, 0.12, rng.uniform(0.35, 0.5)), colour)
        kind = "lock_box"
    return SceneObject(kind, "ground_lock", (x, y, 0.0), primitives)


def bollard_row(rng: Rng, x: float, y: float, count: int) -> list[SceneObject]:
    """Official bollards in a row along the kerb (hard negatives for ground locks)."""
    spacing, height = rng.uniform(1.2, 1.8), rng.uniform(0.6, 0.9)
    colour = _colour(rng, (70, 70, 70), 20)
    objects = []
    for i in range(count):
        bx = x + i * spacing
        primitives = cuboid((bx, y, 0.0), (0.16, 0.16, height), colour)
        primitives += cuboid((bx, y, height * 0.7), (0.17, 0.17, 0.06), (230, 230, 230))
        objects.append(SceneObject("bollard", None, (bx, y, 0.0), primitives))
    return objects


def hydrant(rng: Rng, x: float, y: float) -> SceneObject:
    """A fire hydrant (hard negative for ground locks)."""
    primitives = cuboid((x, y, 0.0), (0.25, 0.25, 0.7), (30, 30, 200))
    primitives += cuboid((x, y, 0.35), (0.1, 0.45, 0.1), (30, 30, 190))
    primitives += cuboid((x, y, 0.7), (0.18, 0.18, 0.1), (40, 40, 170))
    return SceneObject("hydrant", None, (x, y, 0.0), primitives)


def facade(rng: Rng, x: float, width: float, y: float, height: float, flip: bool
           ) -> SceneObject:
    """A building front from x to x + width on the facade line y: one textured quad."""
    quad = _vertical_quad(x + width / 2, y, 0.0, width, height, facing_y=True, flip=flip)
    texture = _Lazy(partial(facade_texture, width_m=width, height_m=height),
                    int(rng.integers(2**31)))
    return SceneObject("facade", None, (x + width / 2, y, 0.0),
                       [Decal(quad, texture, (130.0, 140.0, 150.0))], layer=0)


def utility_box(rng: Rng, x: float, y: float) -> SceneObject:
    """A grey or green roadside utility cabinet (a favourite surface for small ads)."""
    colour = _colour(rng, tuple(rng.choice([[150, 150, 145], [70, 110, 70]])), 12)
    primitives = cuboid((x, y, 0.0), (0.5, 0.9, rng.uniform(1.1, 1.5)), colour)
    return SceneObject("utility_box", None, (x, y, 0.0), primitives)


def pole(x: float, y: float, height: float, colour: Colour = (90, 90, 90)) -> SceneObject:
    """A utility or lamp pole."""
    return SceneObject("pole", None, (x, y, 0.0),
                       [Line(np.array([[x, y, 0.0], [x, y, height]]), colour, 0.22)])


def _catenary(a: FloatArray, b: FloatArray, sag: float, points: int = 12) -> FloatArray:
    t = np.linspace(0, 1, points)[:, None]
    line = a + t * (b - a)
    line[:, 2] -= sag * 4 * t[:, 0] * (1 - t[:, 0])
    return line


def cable_clutter(rng: Rng, x: float, y: float, height: float, span: float) -> SceneObject:
    """A 'spider web' on a pole top: many sagging cables, bundles and hanging coils."""
    primitives: list[Primitive] = []
    for _ in range(int(rng.integers(8, 20))):
        start = np.array([x, y + rng.uniform(-0.3, 0.3), height - rng.uniform(0.0, 1.2)])
        end = np.array([x + rng.choice([-1, 1]) * rng.uniform(1.0, span),
                        y + rng.uniform(-2.5, 2.5), height - rng.uniform(0.0, 1.5)])
        primitives.append(Line(_catenary(start, end, rng.uniform(0.3, 1.5)),
                               _colour(rng, (25, 25, 25), 10), rng.uniform(0.015, 0.04)))
    for _ in range(int(rng.integers(1, 4))):
        centre = np.array([x + rng.uniform(-1.0, 1.0), y, height - rng.uniform(0.8, 2.0)])
        radius = rng.uniform(0.15, 0.4)
        angles = np.linspace(0, 2 * math.pi * rng.uniform(2, 4), 40)
        coil = centre + np.stack([radius * np.cos(angles), rng.uniform(-0.05, 0.05, 40),
                                  radius * np.sin(angles) * 1.3], axis=1)
        primitives.append(Line(coil, (30, 30, 30), 0.025))
    return SceneObject("cable_clutter", "cable_clutter", (x, y, height), primitives)


def neat_lines(x1: float, x2: float, y: float, height: float) -> SceneObject:
    """A few neat parallel lines between two proper poles (hard negative for clutter)."""
    primitives: list[Primitive] = []
    for offset in (0.0, 0.35, 0.7):
        a, b = np.array([x1, y, height - offset]), np.array([x2, y, height - offset])
        primitives.append(Line(_catenary(a, b, 0.25), (35, 35, 35), 0.02))
    return SceneObject("neat_lines", None, ((x1 + x2) / 2, y, height), primitives)


def poster(rng: Rng, x: float, y: float, z: float, facing_y: bool, scale: float = 1.0,
           flip: bool = False) -> SceneObject:
    """A small ad stuck on a wall, pole, box or window (a textured paper rectangle)."""
    width, height = rng.uniform(0.2, 0.6) * scale, rng.uniform(0.25, 0.8) * scale
    texture = _Lazy(poster_texture, int(rng.integers(2**31)))
    quad = _vertical_quad(x, y, z, width, height, facing_y, flip)
    return SceneObject("poster", "unauthorized_ad", (x, y, z),
                       [Decal(quad, texture, (200.0, 215.0, 225.0))])


def shop_sign(rng: Rng, x: float, y: float, z: float, width: float, facing_y: bool,
              flip: bool = False) -> SceneObject:
    """A lawful shop signboard above a shop front (hard negative for ads)."""
    height = rng.uniform(0.6, 1.1)
    quad = _vertical_quad(x, y, z, width, height, facing_y, flip)
    texture = _Lazy(partial(sign_texture, width_m=width, height_m=height),
                    int(rng.integers(2**31)))
    return SceneObject("shop_sign", None, (x, y, z), [Decal(quad, texture, (60.0, 60.0, 120.0))])


def traffic_sign(rng: Rng, x: float, y: float) -> SceneObject:
    """A round or triangular traffic sign on a post (hard negative for ads)."""
    top = rng.uniform(2.2, 2.8)
    primitives: list[Primitive] = [Line(np.array([[x, y, 0.0], [x, y, top]]), (150, 150, 150),
                                        0.06)]
    radius = 0.3
    angles = np.linspace(0, 2 * math.pi, 3 if rng.random() < 0.4 else 16, endpoint=False)
    disc = np.stack([np.full_like(angles, x - 0.05), y + radius * np.cos(angles),
                     top + radius * np.sin(angles)], axis=1)
    primitives.append(Face(disc, (40, 40, 200) if len(angles) == 16 else (30, 200, 230)))
    return SceneObject("traffic_sign", None, (x, y, 0.0), primitives)


def pedestrian(rng: Rng, x: float, y: float) -> SceneObject:
    """A person: legs, torso and head as thin boxes (a negative for vending)."""
    height = rng.uniform(1.5, 1.85)
    clothes = _colour(rng, tuple(rng.uniform(30, 220, 3)), 10)
    primitives = cuboid((x, y, 0.0), (0.25, 0.35, height * 0.47), (60, 50, 40))
    primitives += cuboid((x, y, height * 0.47), (0.28, 0.42, height * 0.38), clothes)
    primitives += cuboid((x, y, height * 0.85), (0.2, 0.18, height * 0.15), (120, 150, 190))
    return SceneObject("pedestrian", None, (x, y, 0.0), primitives)


def tree(rng: Rng, x: float, y: float) -> SceneObject:
    """A street tree: trunk and a rough crown."""
    height = rng.uniform(4.0, 7.0)
    primitives: list[Primitive] = [Line(np.array([[x, y, 0.0], [x, y, height * 0.5]]),
                                        (40, 60, 90), 0.25)]
    green = _colour(rng, (50, 120, 60), 20)
    primitives += cuboid((x, y, height * 0.45), (2.5, 2.5, height * 0.55), green,
                         float(rng.uniform(0, math.pi)))
    return SceneObject("tree", None, (x, y, 0.0), primitives)
