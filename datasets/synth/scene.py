"""Random street scenes: a street layout, a camera (dashcam or CCTV), and objects placed
where they belong, violations and hard negatives alike.

Layout across the street (y, metres): the carriageway spans ``-road_half..road_half`` with
parking bays or hatched no-parking strips along the right kerb; sidewalks with tactile paving
run beyond each kerb up to the facades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from streetwatch.datasets.synth import objects as build
from streetwatch.datasets.synth.camera import PinholeCamera
from streetwatch.datasets.synth.render import Face, SceneObject

Rng = np.random.Generator
CAMERA_KINDS = ("dashcam", "cctv")


BAY_DEPTH_M = 2.4   # parking bays and hatched areas reach this far from the kerb
BAY_LENGTH_M = 6.0
KERB_KINDS = ("bays", "hatched", "plain")
CROSSING_DEPTH_M = 4.0
CROSSING_MARGIN_M = 1.0  # kerb-side markings keep this far from the crossing
# Vendors keep apart: two stalls drawn into one another make one box no labeller would draw.
STALL_SPACING_M = 3.5
# A still stages the violations that stand on the ground (stalls, cars where they must not
# be, ground locks) no farther than this beyond the start of the street's span in front of
# the camera. Farther, a stall or a car is under 16 px tall at a 640 px input: too few to
# tell a stall from a van or a car on the pavement from one in the lane; a detector cannot
# learn that from the pixels, nor a reviewer confirm a case from such evidence.
EVIDENCE_REACH_M = 40.0


@dataclass(frozen=True)
class StreetLayout:
    """Cross-section and kerb-side markings of a straight street, in metres.

    Attributes:
        road_half: Half the carriageway width.
        sidewalk: Sidewalk width (both sides).
        length: Street length along x, from ``start``.
        start: x where the street begins.
        kerb_segments: Along the right kerb, ``(x1, x2, kind)`` with kind ``bays`` (marked
            parking bays), ``hatched`` (yellow hatched no-parking area) or ``plain``.
        crossing_x: x of the zebra crossing's near edge (4 m deep).

    Bays and hatched areas stop short of the crossing, as they do on a real street: a
    segment that would reach onto it is cut back to whole bays on either side. So a car on
    the crossing is always one that should not be there, and the labels never call one
    car on a crossing ``vehicle`` and the next ``illegal_parking``.
    """

    road_half: float
    sidewalk: float
    length: float = 160.0
    start: float = -20.0
    kerb_segments: tuple[tuple[float, float, str], ...] = ()
    crossing_x: float = 40.0

    def __post_init__(self) -> None:
        # Also runs on dataclasses.replace, so a layout given a new crossing is cut again.
        object.__setattr__(self, "kerb_segments", _clear_of_crossing(self.kerb_segments,
                                                                     self.crossing_zone()))

    def crossing_zone(self, margin: float = CROSSING_MARGIN_M) -> tuple[float, float]:
        """The x range of the zebra crossing, widened by ``margin`` on both sides."""
        return self.crossing_x - margin, self.crossing_x + CROSSING_DEPTH_M + margin

    def right_lane_y(self, rng: Rng) -> float:
        """A random y in the right-hand driving lanes, clear of the kerb-side bays."""
        inner = -self.road_half + BAY_DEPTH_M + 1.0
        return float(rng.uniform(inner, max(inner + 0.1, -1.0)))

    @property
    def bay_y(self) -> float:
        """y of the centre line of the bays and hatched areas."""
        return -self.road_half + BAY_DEPTH_M / 2

    def segments(self, kind: str) -> list[tuple[float, float]]:
        """Kerb segments of one kind."""
        return [(x1, x2) for x1, x2, k in self.kerb_segments if k == kind]

    @property
    def right_kerb(self) -> float:
        """y of the right kerb."""
        return -self.road_half


@dataclass
class Scene:
    """A camera and everything in front of it."""

    camera: PinholeCamera
    layout: StreetLayout
    objects: list[SceneObject] = field(default_factory=list)


def _clear_of_crossing(segments: tuple[tuple[float, float, str], ...],
                       zone: tuple[float, float]) -> tuple[tuple[float, float, str], ...]:
    """Kerb segments with every bay-length cell that reaches into ``zone`` taken out."""
    kept: list[tuple[float, float, str]] = []
    for x1, x2, kind in segments:
        if kind == "plain" or x2 <= zone[0] or x1 >= zone[1]:
            kept.append((x1, x2, kind))
            continue
        before = x1 + BAY_LENGTH_M * math.floor((zone[0] - x1) / BAY_LENGTH_M)
        after = x1 + BAY_LENGTH_M * math.ceil((zone[1] - x1) / BAY_LENGTH_M)
        if before - x1 >= BAY_LENGTH_M:
            kept.append((x1, before, kind))
        if x2 - after >= BAY_LENGTH_M:
            kept.append((after, x2, kind))
    return tuple(kept)


def random_layout(rng: Rng, start: float = -20.0, length: float = 160.0) -> StreetLayout:
    """A street of random width with random kerb-side segments and a crossing."""
    segments: list[tuple[float, float, str]] = []
    x = start
    while x < start + length:
        span = float(rng.integers(2, 6)) * BAY_LENGTH_M
        segments.append((x, x + span, str(rng.choice(KERB_KINDS, p=[0.45, 0.3, 0.25]))))
        x += span + 1.0
    return StreetLayout(road_half=float(rng.uniform(4.5, 8.0)),
                        sidewalk=float(rng.uniform(3.0, 6.0)), length=length, start=start,
                        kerb_segments=tuple(segments),
                        crossing_x=float(rng.uniform(start + 45, start + min(length, 90))))


def _flat(x1: float, x2: float, y1: float, y2: float, z: float, colour: tuple[float, ...],
          kind: str, layer: int) -> SceneObject:
    face = Face(np.array([[x1, y1, z], [x2, y1, z], [x2, y2, z], [x1, y2, z]]),
                (float(colour[0]), float(colour[1]), float(colour[2])))
    return SceneObject(kind, None, ((x1 + x2) / 2, (y1 + y2) / 2, z), [face], layer=layer)


def random_camera(rng: Rng, kind: str, layout: StreetLayout, size: tuple[int, int]
                  ) -> PinholeCamera:
    """A dashcam in a lane (1.2-1.8 m high, forward or side-looking) or a CCTV camera on a
    sidewalk pole (4-10 m high, looking obliquely down)."""
    width, height = size
    if kind == "dashcam":
        lane_y = layout.right_lane_y(rng)
        side = rng.random() < 0.25
        yaw = rng.uniform(-75, -55) if side else rng.uniform(-6, 6)
        return PinholeCamera(width, height, rng.uniform(70, 100), (0.0, lane_y,
                             rng.uniform(1.2, 1.8)), yaw, rng.uniform(-6, 0))
    if kind == "cctv":
        on_right = rng.random() < 0.7
        y = layout.right_kerb - 0.5 if on_right else layout.road_half + 0.5
        yaw = rng.uniform(5, 40) * (1 if on_right else -1)
        return PinholeCamera(width, height, rng.uniform(55, 85), (0.0, y, rng.uniform(4, 10)),
                             yaw, rng.uniform(-35, -15))
    raise ValueError(f"camera kind {kind!r}: use one of {', '.join(CAMERA_KINDS)}")


def facades(layout: StreetLayout, rng: Rng, violations: bool) -> list[SceneObject]:
    """Building fronts with their lawful signs, and small ads on them when ``violations``."""
    scenery, decals = _facades(layout, rng)
    return scenery + [d for d in decals if violations or d.class_key is None]


def ground(layout: StreetLayout, rng: Rng) -> list[SceneObject]:
    """Road, sidewalks, tactile paving, lane marks, crossing, bays and hatched areas."""
    x1, x2 = layout.start, layout.start + layout.length
    asphalt = np.array([70, 70, 72]) + rng.normal(0, 8)
    paving = np.array([150, 160, 165]) + rng.normal(0, 12, 3)
    far = layout.road_half + layout.sidewalk
    items = [
        _flat(x1, x2, -layout.road_half, layout.road_half, 0.0, tuple(asphalt), "road", 1),
        _flat(x1, x2, -far, -layout.road_half, 0.12, tuple(paving), "sidewalk", 1),
        _flat(x1, x2, layout.road_half, far, 0.12, tuple(paving), "sidewalk", 1),
    ]
    for y in (-far + 0.8, far - 1.1):  # tactile paving
        items.append(_flat(x1, x2, y, y + 0.3, 0.125, (40, 190, 220), "tactile_paving", 2))
    for x in np.arange(x1, x2, 9.0):  # centre line dashes
        items.append(_flat(x, x + 4.0, -0.08, 0.08, 0.005, (235, 235, 235), "lane_mark", 2))
    crossing_x = layout.crossing_x
    for y in np.arange(-layout.road_half + 0.3, layout.road_half, 1.0):
        items.append(_flat(crossing_x, crossing_x + CROSSING_DEPTH_M, y, y + 0.5, 0.006,
                           (235, 235, 235), "crossing", 2))
    return items + _kerb_markings(layout)


def _kerb_markings(layout: StreetLayout) -> list[SceneObject]:
    """White bay lines and yellow hatched no-parking areas along the right kerb."""
    kerb, outer = layout.right_kerb, layout.right_kerb + BAY_DEPTH_M
    white, yellow = (235.0, 235.0, 235.0), (30.0, 200.0, 230.0)
    items: list[SceneObject] = []
    for x1, x2, kind in layout.kerb_segments:
        if kind == "plain":
            continue
        colour = white if kind == "bays" else yellow
        items.append(_flat(x1, x2, outer - 0.12, outer, 0.006, colour, f"{kind}_line", 2))
        if kind == "bays":
            for x in np.arange(x1, x2 + 0.01, BAY_LENGTH_M):
                items.append(_flat(x - 0.06, x + 0.06, kerb, outer, 0.006, white, "bay_line", 2))
            continue
        for x in (x1, x2):
            items.append(_flat(x - 0.06, x + 0.06, kerb, outer, 0.006, yellow, "hatch_line", 2))
        for x in np.arange(x1, x2 - BAY_DEPTH_M, 1.2):  # diagonal hatching
            stripe = Face(np.array([[x, kerb, 0.007], [x + 0.2, kerb, 0.007],
                                    [x + 0.2 + BAY_DEPTH_M, outer, 0.007],
                                    [x + BAY_DEPTH_M, outer, 0.007]]), yellow)
            items.append(SceneObject("hatching", None, (x + 1.2, layout.bay_y, 0.0), [stripe],
                                     layer=2))
    return items


def _facades(layout: StreetLayout, rng: Rng) -> tuple[list[SceneObject], list[SceneObject]]:
    """Facades with windows and shop fronts, and the lawful signs and ads on them."""
    scenery: list[SceneObject] = []
    decals: list[SceneObject] = []
    for side in (-1, 1):
        y = side * (layout.road_half + layout.sidewalk)
        x = layout.start
        while x < layout.start + layout.length:
            width = rng.uniform(6, 14)
            height = rng.uniform(6, 18)
            scenery.append(build.facade(rng, x, width, y, height, flip=side < 0))
            if rng.random() < 0.8:
                decals.append(build.shop_sign(rng, x + width / 2, y - side * 0.05,
                                              3.0, width * 0.8, facing_y=True, flip=side < 0))
            if rng.random() < 0.35:
                for _ in range(int(rng.integers(1, 4))):
                    decals.append(build.poster(rng, x + rng.uniform(0.5, width - 0.5),
                                               y - side * 0.04, rng.uniform(0.8, 2.0),
                                               facing_y=True, flip=side < 0))
            x += width
    for obj in decals:
        obj.layer = 0
    return scenery, decals


def random_scene(rng: Rng, camera_kind: str, size: tuple[int, int]) -> Scene:
    """A street with a camera and randomly placed objects of every kind.

    About 7 % of scenes are made without any violation, only scenery and hard negatives;
    with the scenes whose violations all fall out of view, about 15 % of images show none.
    """
    layout = random_layout(rng)
    camera = random_camera(rng, camera_kind, layout, size)
    scene = Scene(camera, layout)
    scene.objects += ground(layout, rng)
    scenery, facade_decals = _facades(layout, rng)
    violations = rng.random() >= 0.07
    scene.objects += scenery + [d for d in facade_decals if violations or d.class_key is None]
    scene.objects += street_furniture(layout, rng, violations, (4.0, 70.0),
                                      reach=EVIDENCE_REACH_M)
    return scene


def _in_segments(x: float, segments: list[tuple[float, float]]) -> bool:
    return any(x1 + 2.5 <= x <= x2 - 2.5 for x1, x2 in segments)


def street_furniture(layout: StreetLayout, rng: Rng, violations: bool,
                     span: tuple[float, float], traffic: bool = True,
                     reach: float | None = None) -> list[SceneObject]:
    """Poles, cables, vehicles, vending, locks and hard negatives between x = span[0] and
    span[1]; violations only when ``violations``, those on the ground only up to ``reach``
    metres beyond span[0] when given; cars standing in the driving lanes (as if caught in
    traffic) only when ``traffic`` (videos move their traffic instead)."""
    objects = _poles(layout, rng, violations, span)
    parked, free_bays = _parked_cars(layout, rng, span, traffic)
    objects += parked
    if violations:
        near = span if reach is None else (span[0], min(span[1], span[0] + reach))
        objects += _violations_at_ground(layout, rng, near, free_bays)
    objects += _utility_boxes(layout, rng, violations, span)
    return objects + _hard_negatives(layout, rng, span)


def _poles(layout: StreetLayout, rng: Rng, violations: bool, span: tuple[float, float]
           ) -> list[SceneObject]:
    """Poles with cable clutter or neat lines, some with an ad stuck on them."""
    objects: list[SceneObject] = []
    pole_y = layout.right_kerb - 0.6
    for px in np.arange(span[0] + rng.uniform(-2, 8), span[1], rng.uniform(18, 30)):
        height = rng.uniform(7, 9)
        objects.append(build.pole(float(px), pole_y, height))
        if violations and rng.random() < 0.5:
            objects.append(build.cable_clutter(rng, float(px), pole_y, height - 0.3, 6.0))
        else:
            objects.append(build.neat_lines(float(px), float(px) + 20, pole_y, height - 0.3))
        if violations and rng.random() < 0.3:
            objects.append(build.poster(rng, float(px) - 0.13, pole_y, rng.uniform(1.2, 2.0),
                                        facing_y=False, scale=0.8))
    return objects


def _parked_cars(layout: StreetLayout, rng: Rng, span: tuple[float, float], traffic: bool
                 ) -> tuple[list[SceneObject], list[float]]:
    """Cars in the lanes (if ``traffic``) and in bays, all ``vehicle``; and the free bays.

    A car in the lanes stands clear of the crossing: one on it is ``illegal_parking``.
    """
    objects: list[SceneObject] = []
    # Wide enough that the longest car (4.9 m, slightly turned) stays off the stripes.
    clear = layout.crossing_zone(margin=3.0)
    for _ in range(int(rng.integers(1, 5)) if traffic else 0):
        lane = rng.uniform(-layout.road_half + BAY_DEPTH_M + 1.0, layout.road_half - 1.2)
        x = _outside(float(rng.uniform(*span)), span, clear)
        objects.append(build.car(rng, x, lane, 0.0, "vehicle"))
    free_bays: list[float] = []
    for x1, x2 in layout.segments("bays"):
        for bx in np.arange(x1 + BAY_LENGTH_M / 2, x2, BAY_LENGTH_M):
            if not span[0] <= bx <= span[1]:
                continue
            if rng.random() < 0.55:
                objects.append(build.car(rng, float(bx), layout.bay_y,
                                         float(rng.normal(0, 0.03)), "vehicle"))
            else:
                free_bays.append(float(bx))
    return objects, free_bays


def _outside(x: float, span: tuple[float, float], zone: tuple[float, float]) -> float:
    """``x``, drawn uniformly over ``span``, mapped onto the span without ``zone``, so that
    it is uniform over what is left: the span is squeezed to the free length and the
    zone is stepped over."""
    lo, hi = max(zone[0], span[0]), min(zone[1], span[1])
    if hi <= lo:
        return x
    left = lo - span[0]
    free = (span[1] - span[0]) - (hi - lo)
    u = (x - span[0]) / (span[1] - span[0]) * free
    return span[0] + u if u <= left else hi + (u - left)


def _violations_at_ground(layout: StreetLayout, rng: Rng, span: tuple[float, float],
                          free_bays: list[float]) -> list[SceneObject]:
    """Illegally parked cars, vending and ground locks, between x = span[0] and span[1]."""
    objects: list[SceneObject] = []
    walk_mid = layout.right_kerb - layout.sidewalk / 2
    hatched = [(max(x1, span[0] - 2.5), min(x2, span[1] + 2.5))
               for x1, x2 in layout.segments("hatched") if x2 > span[0] and x1 < span[1]]
    hatched = [(x1, x2) for x1, x2 in hatched if x2 - x1 >= 5.0]
    crossing_near = layout.crossing_x + CROSSING_DEPTH_M / 2 <= span[1]
    for _ in range(int(rng.integers(0, 3))):
        where = rng.random()
        x = float(rng.uniform(*span))
        if 0.5 <= where < 0.8 and hatched:  # in a hatched no-parking area
            x1, x2 = hatched[int(rng.integers(len(hatched)))]
            x, y = float(rng.uniform(x1 + 2.5, max(x1 + 2.5, x2 - 2.5))), layout.bay_y
        elif where < 0.5 or not crossing_near:  # on the sidewalk
            y = walk_mid + rng.uniform(-0.5, 0.5)
        else:  # on the crossing
            x = layout.crossing_x + CROSSING_DEPTH_M / 2
            y = rng.uniform(-layout.road_half + 1.2, layout.road_half - 1.2)
        objects.append(build.car(rng, x, y, float(rng.normal(0, 0.15)), "illegal_parking"))
    stalls: list[float] = []
    for _ in range(int(rng.integers(0, 4))):
        maker = build.vending_stall if rng.random() < 0.6 else build.vending_cart
        x, y = float(rng.uniform(*span)), walk_mid + rng.uniform(-1, 1)
        if all(abs(x - other) > STALL_SPACING_M for other in stalls):
            stalls.append(x)
            objects.append(maker(rng, x, y))
    lock_reach = span[0] + EVIDENCE_REACH_M  # small: nearer in videos too
    near_bays = [b for b in free_bays if b < lock_reach]
    for _ in range(int(rng.integers(0, 4))):
        if near_bays and rng.random() < 0.6:  # in a free bay, where locks are put
            x, y = near_bays.pop(int(rng.integers(len(near_bays)))), layout.bay_y
        else:
            x, y = float(rng.uniform(span[0], lock_reach)), walk_mid
        objects.append(build.ground_lock(rng, x, y + rng.uniform(-0.4, 0.4)))
    return objects


def _utility_boxes(layout: StreetLayout, rng: Rng, violations: bool,
                   span: tuple[float, float]) -> list[SceneObject]:
    """Cabinets at the kerb, often with ads stuck on the side facing the road."""
    objects: list[SceneObject] = []
    y = layout.right_kerb - 0.8
    for _ in range(int(rng.integers(0, 3))):
        bx = float(rng.uniform(*span))
        objects.append(build.utility_box(rng, bx, y))
        if violations and rng.random() < 0.6:
            objects.append(build.poster(rng, bx, y + 0.46, float(rng.uniform(0.3, 0.7)),
                                        facing_y=True, scale=0.7))
    return objects


def _hard_negatives(layout: StreetLayout, rng: Rng, span: tuple[float, float]
                    ) -> list[SceneObject]:
    """Bollards, a hydrant, a traffic sign, pedestrians and trees."""
    kerb = layout.right_kerb
    walk_mid = kerb - layout.sidewalk / 2
    objects = build.bollard_row(rng, rng.uniform(*span), kerb - 0.35, int(rng.integers(3, 7)))
    objects.append(build.hydrant(rng, rng.uniform(*span), kerb - 0.5))
    objects.append(build.traffic_sign(rng, rng.uniform(*span), kerb - 0.4))
    for _ in range(int(rng.integers(1, 6))):
        objects.append(build.pedestrian(rng, rng.uniform(*span),
                                        walk_mid + rng.uniform(-1.5, 1.5)))
    for tx in np.arange(span[0] + rng.uniform(-1, 6), span[1], rng.uniform(12, 20)):
        objects.append(build.tree(rng, float(tx), kerb - layout.sidewalk + 1.2))
    return objects
