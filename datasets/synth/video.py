"""Synthetic videos with ground truth: a patrol dashcam drive and a static CCTV clip.

Both are described by a :class:`VideoPlan`: static objects, actors that move or come and go
on a timeline, a camera pose for every time, and one look (light and weather) for the whole
clip. A plan is rebuilt from its :class:`VideoParams` in every worker, so frames render in
parallel and a seed always gives the same video.

Dashcam: the camera drives along a street at 10-40 km/h, 25 fps, with a GPS track (GPX and
CSV, 1 Hz, a few metres of noise) along the street laid on the map, and a truth file of every
labelled object: class, position in metres and WGS84, and the frames it is visible in.

CCTV: a static camera on a pole across the street watches a hatched no-parking area. Cars
drive through, one stops briefly, one parks for ``park_seconds``, a vendor sets up and later
leaves. Time may be compressed: a clip rendered at 1 fps still carries true timestamps. The
camera definition (zones as normalised polygons) goes beside the video, and the truth lists
every event.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from shapely.geometry import Polygon, box

from streetwatch.datasets.format import replace_dir
from streetwatch.datasets.synth import objects as build
from streetwatch.datasets.synth.camera import PinholeCamera
from streetwatch.datasets.synth.generate import Look, random_look, render_frame
from streetwatch.datasets.synth.geo import GpsFix, StreetOnMap, csv_text, gpx_text, iso_utc
from streetwatch.datasets.synth.parallel import ordered_map
from streetwatch.datasets.synth.render import (
    Box,
    Decal,
    Face,
    Line,
    Primitive,
    SceneObject,
    UInt8Image,
)
from streetwatch.datasets.synth.scene import (
    BAY_DEPTH_M,
    StreetLayout,
    facades,
    ground,
    random_layout,
    street_furniture,
)
from streetwatch.models.taxonomy import TAXONOMY

VIDEO_KINDS = ("dashcam", "cctv")
DASHCAM_FPS = 25.0
GPS_HZ = 1.0
GPS_NOISE_M = 2.0
VIOLATIONS = frozenset(c.key for c in TAXONOMY if c.can_be_case)
VENDOR_X_M = 32.0  # where the CCTV clip's vendor sets up: beyond the parked car, not behind it
STATIC_PREFIX = "static-"  # truth ids of objects that never move; actors have their own names
# Cities the synthetic streets are laid in: (name, lat, lon).
_CITIES = (("Hangzhou", 30.2741, 120.1551), ("Chengdu", 30.6586, 104.0648),
           ("Wuhan", 30.5928, 114.3055), ("Shenzhen", 22.5431, 114.0579),
           ("Beijing", 39.9042, 116.4074))


@dataclass(frozen=True)
class VideoParams:
    """Everything a video is made from; equal params give an identical video."""

    kind: str
    seed: int
    seconds: float
    size: tuple[int, int] = (1280, 720)
    fps: float | None = None  # None: 25 for dashcam, 1 for CCTV
    park_seconds: float = 360.0

    @property
    def frame_rate(self) -> float:
        """Frames per second of the clip (of true time; CCTV time may be compressed)."""
        if self.fps is not None:
            return self.fps
        return DASHCAM_FPS if self.kind == "dashcam" else 1.0


def translated(obj: SceneObject, dx: float, dy: float, class_key: str | None) -> SceneObject:
    """A copy of ``obj`` moved by (dx, dy) metres and labelled ``class_key``."""
    offset = np.array([dx, dy, 0.0])
    primitives: list[Primitive] = []
    for p in obj.primitives:
        if isinstance(p, Decal):
            primitives.append(replace(p, quad=p.quad + offset))
        elif isinstance(p, Face | Box | Line):
            primitives.append(replace(p, points=p.points + offset))
    x, y, z = obj.anchor
    return SceneObject(obj.kind, class_key, (x + dx, y + dy, z), primitives, obj.layer)


@dataclass(frozen=True)
class Keyframe:
    """An actor's place at a time: t seconds from the start, street (x, y) metres."""

    t: float
    x: float
    y: float


@dataclass
class Actor:
    """An object that moves along keyframes, present only between the first and last.

    Attributes:
        name: Stable id in the truth file.
        obj: The object as built (at its anchor).
        keyframes: Times and places, in time order; linear motion between them.
        moving_class: Label while moving.
        still_class: Label while standing still (e.g. ``illegal_parking`` in a hatched area).
    """

    name: str
    obj: SceneObject
    keyframes: list[Keyframe]
    moving_class: str | None
    still_class: str | None

    def at(self, t: float) -> SceneObject | None:
        """The object at time t, or None when it is not in the scene."""
        frames = self.keyframes
        if t < frames[0].t or t > frames[-1].t:
            return None
        spans = list(itertools.pairwise(frames))
        # A time on the boundary of a stop counts as stopped.
        spans.sort(key=lambda span: (span[0].x, span[0].y) != (span[1].x, span[1].y))
        x, y, still = frames[-1].x, frames[-1].y, len(frames) == 1
        for a, b in spans:
            if a.t <= t <= b.t:
                share = 0.0 if b.t == a.t else (t - a.t) / (b.t - a.t)
                x, y = a.x + share * (b.x - a.x), a.y + share * (b.y - a.y)
                still = (a.x, a.y) == (b.x, b.y)
                break
        label = self.still_class if still else self.moving_class
        return translated(self.obj, x - self.obj.anchor[0], y - self.obj.anchor[1], label)


@dataclass
class VideoPlan:
    """A clip: its scene over time, its camera over time, and its look."""

    params: VideoParams
    layout: StreetLayout
    street: StreetOnMap
    start: datetime
    look: Look
    static: list[SceneObject]
    actors: list[Actor]
    camera_at: Callable[[float], PinholeCamera]
    events: list[dict[str, Any]] = field(default_factory=list)
    no_parking: tuple[float, float] | None = None  # CCTV: the watched hatched area, x1..x2

    @property
    def frame_times(self) -> list[float]:
        """Seconds from the start of every frame."""
        rate = self.params.frame_rate
        return [i / rate for i in range(max(1, int(self.params.seconds * rate)))]

    def objects_at(self, t: float) -> tuple[list[SceneObject], list[str]]:
        """Everything in the scene at time t, with the truth id of each object."""
        objects = list(self.static)
        ids = [f"{STATIC_PREFIX}{i}" for i in range(len(self.static))]
        for actor in self.actors:
            obj = actor.at(t)
            if obj is not None:
                objects.append(obj)
                ids.append(actor.name)
        return objects, ids


def _street_on_map(rng: np.random.Generator) -> StreetOnMap:
    _, lat, lon = _CITIES[int(rng.integers(len(_CITIES)))]
    return StreetOnMap(lat + float(rng.uniform(-0.03, 0.03)), lon + float(rng.uniform(-0.03, 0.03)),
                       float(rng.uniform(0, 360)))


def _start_time(rng: np.random.Generator) -> datetime:
    return datetime(2026, 5, 12, 0, 0, tzinfo=UTC) + timedelta(minutes=int(rng.integers(0, 720)))


def _traffic(rng: np.random.Generator, layout: StreetLayout, seconds: float, x_range: tuple[
        float, float], prefix: str, exclude_lane: float | None = None) -> list[Actor]:
    """Cars driving through in both directions, entering at random times."""
    actors: list[Actor] = []
    t = float(rng.uniform(-20, 0))
    index = 0
    while t < seconds:
        towards = rng.random() < 0.5  # oncoming, on the left half of the road
        lane = float(rng.uniform(1.5, layout.road_half - 1.2)) if towards else \
            layout.right_lane_y(rng)
        if exclude_lane is not None and abs(lane - exclude_lane) < 2.5:
            lane = float(rng.uniform(1.5, layout.road_half - 1.2))
            towards = True
        speed = float(rng.uniform(6, 14))
        start, end = (x_range[1], x_range[0]) if towards else x_range
        duration = abs(end - start) / speed
        car = build.car(rng, start, lane, math.pi if towards else 0.0, "vehicle")
        actors.append(Actor(f"{prefix}{index}", car, [Keyframe(t, start, lane),
                                                      Keyframe(t + duration, end, lane)],
                            "vehicle", "vehicle"))
        index += 1
        t += float(rng.exponential(6.0))
    return actors


def dashcam_plan(params: VideoParams) -> VideoPlan:
    """A drive along a street at 10-40 km/h, the camera in the right-hand lane."""
    rng = np.random.default_rng([params.seed, 1])
    speed = float(rng.uniform(10, 40)) / 3.6
    distance = speed * params.seconds
    layout = random_layout(rng, start=-30.0, length=distance + 150)
    look = random_look(rng)
    static = ground(layout, rng) + facades(layout, rng, violations=True)
    lane_y = layout.right_lane_y(rng)
    # Nothing may stand in the camera car's own lane (a car parked on a crossing, say).
    static += [o for o in street_furniture(layout, rng, True, (4.0, distance + 80),
                                           traffic=False)
               if not (o.kind == "car" and abs(o.anchor[1] - lane_y) < 2.2)]
    height, hfov = float(rng.uniform(1.2, 1.8)), float(rng.uniform(75, 100))
    pitch = float(rng.uniform(-5, -1))
    width, image_height = params.size

    def camera_at(t: float) -> PinholeCamera:
        # A little road vibration in pitch and yaw.
        return PinholeCamera(width, image_height, hfov, (speed * t, lane_y, height),
                             0.6 * math.sin(1.3 * t), pitch + 0.4 * math.sin(7.1 * t))

    actors = _traffic(rng, layout, params.seconds, (-30.0, distance + 120), "car",
                      exclude_lane=lane_y)
    return VideoPlan(params, layout, _street_on_map(rng), _start_time(rng), look, static,
                     actors, camera_at)


def cctv_plan(params: VideoParams) -> VideoPlan:
    """A pole camera over a hatched no-parking area, with parking, a short stop, a vendor
    and through traffic."""
    rng = np.random.default_rng([params.seed, 2])
    layout = random_layout(rng, start=-30.0, length=150.0)
    hatched = (12.0, 36.0)
    segments = [(x1, x2, kind) for x1, x2, kind in layout.kerb_segments
                if x2 < hatched[0] or x1 > hatched[1]]
    layout = replace(layout, kerb_segments=(*segments, (*hatched, "hatched")),
                     crossing_x=float(rng.uniform(55, 75)))
    look = random_look(rng)
    static = ground(layout, rng) + facades(layout, rng, violations=True)
    kerb = layout.right_kerb
    static += [o for o in street_furniture(layout, rng, True, (4.0, 90.0), traffic=False)
               if o.class_key != "street_vending" and not _blocks_the_events(o, hatched, kerb)]
    seconds = params.seconds
    bay_y = layout.bay_y
    near_lane = kerb + BAY_DEPTH_M + 1.8
    actors = _traffic(rng, layout, seconds, (-30.0, 110.0), "car", exclude_lane=near_lane)
    events: list[dict[str, Any]] = []

    def stopper(name: str, kind: str, arrive: float, stay: float, x: float) -> None:
        car = build.car(rng, -30.0, near_lane, 0.0, "vehicle")
        frames = [Keyframe(arrive - 6, -30.0, near_lane), Keyframe(arrive, x, bay_y),
                  Keyframe(arrive + stay, x, bay_y), Keyframe(arrive + stay + 6, 110.0,
                                                             near_lane)]
        actors.append(Actor(name, car, frames, "vehicle", "illegal_parking"))
        events.append({"id": name, "kind": kind, "class": "illegal_parking", "object": name,
                       "zone": "hatched-no-parking", "start_s": arrive, "end_s": arrive + stay})

    park = min(params.park_seconds, 0.7 * seconds)
    stopper("parked-car", "parking", 0.1 * seconds, park, 20.0)
    short = min(60.0, 0.1 * seconds)
    stopper("short-stop", "stop", 0.05 * seconds, short, 30.0)
    stall = build.vending_stall(rng, VENDOR_X_M, kerb - layout.sidewalk / 2)
    opens, closes = 0.2 * seconds, 0.85 * seconds
    actors.append(Actor("vendor", stall, [Keyframe(opens, VENDOR_X_M, stall.anchor[1]),
                                          Keyframe(closes, VENDOR_X_M, stall.anchor[1])],
                        "street_vending", "street_vending"))
    events.append({"id": "vendor", "kind": "vending", "class": "street_vending",
                   "object": "vendor", "zone": "sidewalk", "start_s": opens, "end_s": closes})
    width, height = params.size
    # On a pole across the street, so the kerb-side poles and trees do not stand between
    # the camera and the hatched area or the vendor.
    camera = PinholeCamera(width, height, float(rng.uniform(65, 75)),
                           (0.0, layout.road_half + 0.5, float(rng.uniform(5.5, 7.5))),
                           float(rng.uniform(-30, -22)), float(rng.uniform(-24, -18)))
    plan = VideoPlan(params, layout, _street_on_map(rng), _start_time(rng), look, static,
                     actors, lambda _t: camera)
    plan.events = events
    plan.no_parking = hatched
    return plan


def _blocks_the_events(obj: SceneObject, hatched: tuple[float, float], kerb: float) -> bool:
    """Whether a static object would stand in the way of the CCTV clip's events: a car in
    the watched hatched area, or something tall on the sidewalk in front of the vendor."""
    x, y, _ = obj.anchor
    if obj.kind == "car":
        return hatched[0] - 3 <= x <= hatched[1] + 3
    in_the_way = obj.kind in ("tree", "utility_box", "pedestrian", "bollard", "hydrant",
                              "traffic_sign", "lock_arch", "lock_box")
    return in_the_way and y < kerb and abs(x - VENDOR_X_M) <= 4.0


@lru_cache(maxsize=2)
def build_plan(params: VideoParams) -> VideoPlan:
    """The plan for a video (cached: every worker builds it once)."""
    if params.kind == "dashcam":
        return dashcam_plan(params)
    if params.kind == "cctv":
        return cctv_plan(params)
    raise ValueError(f"--kind {params.kind!r}: use one of {', '.join(VIDEO_KINDS)}")


@dataclass(frozen=True)
class FrameResult:
    """A rendered frame and its labels as (truth id, class key, (x1, y1, x2, y2))."""

    index: int
    image: UInt8Image
    labels: list[tuple[str, str, tuple[int, int, int, int]]]


def render_video_frame(job: tuple[VideoParams, int]) -> FrameResult:
    """Render frame ``index`` of a video (runs in a worker)."""
    params, index = job
    plan = build_plan(params)
    t = plan.frame_times[index]
    objects, ids = plan.objects_at(t)
    rng = np.random.default_rng([params.seed, 3, index])
    image, rendered = render_frame(plan.camera_at(t), objects, plan.look, rng)
    return FrameResult(index, image, [(ids[label.object_index], label.class_key, label.xyxy)
                                      for label in rendered.labels])


def _object_truth(plan: VideoPlan, name: str) -> dict[str, Any]:
    if name.startswith(STATIC_PREFIX):
        obj = plan.static[int(name.removeprefix(STATIC_PREFIX))]
        x, y, z = obj.anchor
        lat, lon = plan.street.to_wgs84(x, y)
        return {"kind": obj.kind, "position_m": [round(x, 2), round(y, 2), round(z, 2)],
                "wgs84": [round(lat, 7), round(lon, 7)], "moving": False}
    actor = next(a for a in plan.actors if a.name == name)
    return {"kind": actor.obj.kind, "moving": True,
            "keyframes": [{"t_s": k.t, "position_m": [round(k.x, 2), round(k.y, 2)],
                           "wgs84": [round(v, 7) for v in plan.street.to_wgs84(k.x, k.y)]}
                          for k in actor.keyframes]}


def _zones(plan: VideoPlan) -> list[dict[str, Any]]:
    """The CCTV zones, projected into the image and normalised to 0..1."""
    camera = plan.camera_at(0.0)
    layout = plan.layout
    kerb = layout.right_kerb
    areas = []
    if plan.no_parking is not None:
        x1, x2 = plan.no_parking
        areas.append(("hatched-no-parking", "no_parking",
                      [(x1, kerb), (x2, kerb), (x2, kerb + BAY_DEPTH_M), (x1, kerb + BAY_DEPTH_M)]))
    areas.append(("sidewalk", "sidewalk", [(2.0, kerb - layout.sidewalk), (90.0, kerb -
                  layout.sidewalk), (90.0, kerb), (2.0, kerb)]))
    frame = box(0, 0, 1, 1)
    zones = []
    for name, kind, corners in areas:
        world = np.array([[x, y, 0.12 if kind == "sidewalk" else 0.0] for x, y in corners])
        projected = camera.project_polygon(world)
        if projected is None:
            continue
        pixels = projected[0] / np.array([camera.width, camera.height])
        visible = Polygon(pixels).intersection(frame)
        if visible.is_empty or visible.geom_type != "Polygon":
            continue
        points = [[round(u, 4), round(v, 4)] for u, v in list(visible.exterior.coords)[:-1]]
        zones.append({"name": name, "type": kind, "points": points})
    return zones


def write_video(
    out: Path,
    params: VideoParams,
    *,
    workers: int = 2,
    overwrite: bool = False,
    progress: Callable[[Iterable[FrameResult]], Iterable[FrameResult]] = lambda it: it,
) -> dict[str, Any]:
    """Render a video and its companions into ``out`` (written beside, then renamed).

    Returns:
        The truth document.

    Raises:
        ValueError: for a bad kind, duration or size; or when ``out`` exists and
            ``overwrite`` is off.
    """
    if params.kind not in VIDEO_KINDS:
        raise ValueError(f"--kind {params.kind!r}: use one of {', '.join(VIDEO_KINDS)}")
    if params.seconds <= 0 or params.frame_rate <= 0 or min(params.size) < 32:
        raise ValueError("need a positive duration and frame rate and at least 32x32 pixels")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out}: already exists; choose another --out or --force")
    plan = build_plan(params)
    times = plan.frame_times
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        truth = _render_into(staging, plan, times, workers, progress)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return truth


def _render_into(staging: Path, plan: VideoPlan, times: list[float], workers: int,
                 progress: Callable[[Iterable[FrameResult]], Iterable[FrameResult]]
                 ) -> dict[str, Any]:
    params = plan.params
    writer = cv2.VideoWriter(str(staging / "video.mp4"), cv2.VideoWriter.fourcc(*"mp4v"),
                             params.frame_rate, params.size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    seen: dict[str, dict[str, Any]] = {}
    try:
        jobs = [(params, index) for index in range(len(times))]
        for frame in progress(ordered_map(render_video_frame, jobs, workers)):
            writer.write(frame.image)
            for name, key, xyxy in frame.labels:
                entry = seen.setdefault(name, {"id": name, "frames": []})
                entry["frames"].append({"frame": frame.index, "class": key, "box": list(xyxy)})
    finally:
        writer.release()
    objects = []
    for name, entry in sorted(seen.items()):
        classes = sorted({f["class"] for f in entry["frames"]})
        objects.append({**entry, **_object_truth(plan, name), "classes": classes,
                        "violation": bool(set(classes) & VIOLATIONS)})
    truth: dict[str, Any] = {
        "kind": params.kind,
        "seed": params.seed,
        "fps": params.frame_rate,
        "frames": len(times),
        "size": list(params.size),
        "start_utc": iso_utc(plan.start),
        "frame_times_s": [round(t, 4) for t in times],
        "look": plan.look.condition,
        "street": {"origin_wgs84": [plan.street.lat, plan.street.lon],
                   "bearing_deg": plan.street.bearing_deg},
        "objects": objects,
    }
    if params.kind == "dashcam":
        _write_track(staging, plan)
    else:
        truth["events"] = [{**e, "start_utc": iso_utc(plan.start + timedelta(seconds=e["start_s"])),
                            "end_utc": iso_utc(plan.start + timedelta(seconds=e["end_s"]))}
                           for e in plan.events]
        camera = {
            "id": f"synth-cctv-{params.seed}",
            "name": f"synthetic CCTV, seed {params.seed}",
            "timezone": "Asia/Shanghai",
            "resolution": list(params.size),
            "location": {"lat": round(plan.street.lat, 7), "lon": round(plan.street.lon, 7)},
            "zones": _zones(plan),
        }
        (staging / "camera.yaml").write_text(yaml.safe_dump(camera, sort_keys=False),
                                             encoding="utf-8")
    (staging / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def _write_track(staging: Path, plan: VideoPlan) -> None:
    rng = np.random.default_rng([plan.params.seed, 4])
    fixes = []
    for i in range(int(plan.params.seconds * GPS_HZ) + 1):
        t = i / GPS_HZ
        camera = plan.camera_at(t)
        x, y, _ = camera.position
        east, north = rng.normal(0, GPS_NOISE_M, 2)
        lat, lon = plan.street.to_wgs84(x + north, y + east)
        speed = float(np.linalg.norm(np.array(plan.camera_at(t + 0.5).position) -
                                     np.array(plan.camera_at(t - 0.5).position)))
        fixes.append(GpsFix(plan.start + timedelta(seconds=t), lat, lon, speed,
                            plan.street.heading_deg(0.0)))
    name = f"streetwatch synthetic drive, seed {plan.params.seed}"
    (staging / "track.gpx").write_text(gpx_text(fixes, name), encoding="utf-8")
    (staging / "track.csv").write_text(csv_text(fixes), encoding="utf-8")
