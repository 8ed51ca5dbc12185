"""A camera's configuration (YAML): where it is, its zones and the rules that turn tracks into
cases there.

Zones are polygons in normalised image coordinates (0..1, so they survive a change of
resolution); a box is in a zone when its bottom-centre point (where it stands) is. Rules
say how long a class must be present, or stand still, in which zone type before it is a
violation, and when a class is allowed (a night market's vending hours).
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import shapely
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streetwatch.models.files import ConfigFileError, load_model
from streetwatch.models.taxonomy import TAXONOMY

ZoneType = Literal["no_parking", "sidewalk", "exclude", "market"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CameraError(ValueError):
    """A camera file that cannot be used; the message names the file and the key."""


def _class_key(value: str) -> str:
    if value not in TAXONOMY.keys:
        raise ValueError(f"unknown class {value!r}; classes are {TAXONOMY.keys}")
    return value


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ZoneType
    points: list[tuple[float, float]] = Field(min_length=3)

    @field_validator("points")
    @classmethod
    def _normalised(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for x, y in points:
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(f"point ({x}, {y}) is outside 0..1; zone points are "
                                 "fractions of the image width and height")
        if not shapely.Polygon(points).is_valid:
            raise ValueError("the polygon crosses itself")
        return points


class DwellRule(BaseModel):
    """``cls`` present (or, with ``stationary``, standing still) for ``seconds`` in ``zone``
    (a zone type or name; ``any`` for anywhere not excluded) is a ``becomes`` case."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    cls: str = Field(alias="class")
    zone: str = "any"
    seconds: float = Field(ge=0)
    stationary: bool = False
    becomes: str | None = None

    _check_cls = field_validator("cls")(classmethod(lambda cls, v: _class_key(v)))

    @field_validator("becomes")
    @classmethod
    def _becomes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _class_key(value)
        if not TAXONOMY.by_key(value).can_be_case:
            raise ValueError(f"{value!r} cannot be a case")
        return value

    @property
    def category(self) -> str:
        return self.becomes or self.cls


class Allowed(BaseModel):
    """``cls`` is lawful in ``zone`` from ``start`` to ``end`` (local time) on ``days``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    cls: str = Field(alias="class")
    zone: str
    start: time = Field(alias="from")
    end: time = Field(alias="to")
    days: list[Day] = Field(default_factory=lambda: list(DAYS))

    _check_cls = field_validator("cls")(classmethod(lambda cls, v: _class_key(v)))

    def covers(self, local: datetime) -> bool:
        """Whether ``local`` (the camera's time) falls in the window. A window over
        midnight belongs to the day it starts: ``fri 22:00-02:00`` covers Saturday 01:00."""
        now = local.time()
        if self.start <= self.end:
            return DAYS[local.weekday()] in self.days and self.start <= now < self.end
        if now >= self.start:
            return DAYS[local.weekday()] in self.days
        return now < self.end and DAYS[(local.weekday() - 1) % 7] in self.days


DEFAULT_DWELL = [DwellRule.model_validate(rule) for rule in (
    {"class": "vehicle", "zone": "no_parking", "seconds": 300, "stationary": True,
     "becomes": "illegal_parking"},
    {"class": "vehicle", "zone": "sidewalk", "seconds": 120, "stationary": True,
     "becomes": "illegal_parking"},
    {"class": "illegal_parking", "seconds": 120, "stationary": True},
    {"class": "street_vending", "seconds": 60},
    {"class": "ground_lock", "seconds": 10},
    {"class": "cable_clutter", "seconds": 10},
    {"class": "unauthorized_ad", "seconds": 10},
)]


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_confidence: dict[str, float] = Field(default_factory=dict)
    dwell: list[DwellRule] = Field(default_factory=lambda: list(DEFAULT_DWELL))
    allowed: list[Allowed] = Field(default_factory=list)

    @field_validator("min_confidence")
    @classmethod
    def _keys(cls, value: dict[str, float]) -> dict[str, float]:
        for key, conf in value.items():
            _class_key(key)
            if not 0 <= conf <= 1:
                raise ValueError(f"{key}: confidence {conf} is outside 0..1")
        return value


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Camera(BaseModel):
    """A fixed camera: identity, place, time zone, zones and rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    timezone: str = "Asia/Shanghai"
    resolution: tuple[int, int] | None = None
    location: Location | None = None
    zones: list[Zone] = Field(default_factory=list)
    rules: Rules = Field(default_factory=Rules)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    def zone_names(self) -> set[str]:
        return {z.name for z in self.zones} | {z.type for z in self.zones} | {"any"}


def load_camera(path: Path) -> Camera:
    """Read a camera YAML.

    Raises:
        CameraError: naming the file and the first bad key (``zones.0.points``).
    """
    try:
        camera = load_model(path, Camera, "camera file", noun="key")
    except ConfigFileError as exc:
        raise CameraError(str(exc)) from None
    names = camera.zone_names()
    # The default rules name zone types a camera may not have; they simply never fire there.
    written = camera.rules.dwell if "dwell" in camera.rules.model_fields_set else []
    for i, rule in enumerate(written):
        if rule.zone not in names:
            raise CameraError(f"{path}: key 'rules.dwell.{i}.zone': no zone or zone type "
                              f"{rule.zone!r} (have: {sorted(names)})")
    for i, allowed in enumerate(camera.rules.allowed):
        if allowed.zone not in names:
            raise CameraError(f"{path}: key 'rules.allowed.{i}.zone': no zone {allowed.zone!r}")
    return camera


class ZoneIndex:
    """Which zones each box stands in."""

    def __init__(self, zones: list[Zone]) -> None:
        self.zones = zones
        self._polygons = [shapely.Polygon(z.points) for z in zones]
        for polygon in self._polygons:
            shapely.prepare(polygon)

    def member(self, xyxy: npt.NDArray[np.float32], width: int,
               height: int) -> list[set[str]]:
        """For each box, the names and types of the zones its bottom centre lies in."""
        x = (xyxy[:, 0] + xyxy[:, 2]) / 2 / width
        y = xyxy[:, 3] / height
        inside = [shapely.contains_xy(p, x, y) for p in self._polygons]
        return [{label for z, mask in zip(self.zones, inside, strict=True) if mask[i]
                 for label in (z.name, z.type)} for i in range(len(xyxy))]
