"""Where a roadside object stands, from a moving camera's sightings of it.

A patrol vehicle's GPS says where the camera was, not where the object is: a poster on a
facade 10 m to the side is still 10-15 m ahead when it leaves a forward camera's view. Each
sighting of a static object is a ray on the ground from where the frame was taken, at the
vehicle's heading plus the angle of the box centre off the optical axis; as the vehicle
drives on, the rays turn, and the object stands where they cross (the least-squares point
of all the rays, in a local metric plane).

The lens need not be known well. The angle off the axis is ``atan((u - cx) / f)``; a wrong
focal length ``f`` scales every tangent alike, which moves the crossing across the street
but not along it, and along the street is where a place is wrong by tens of metres. When
the rays barely turn (an object far ahead, or seen twice from almost the same spot) or do
not meet in front of the camera, there is no estimate and the caller keeps the vehicle's
own place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streetwatch.inference.types import Location

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class Lens:
    """A vehicle camera: its horizontal field of view and how it is mounted.

    Attributes:
        hfov_deg: Horizontal field of view.
        yaw_deg: Optical axis relative to the direction of travel (0: forward, 90: right).
    """

    hfov_deg: float = 85.0
    yaw_deg: float = 0.0


@dataclass(frozen=True)
class Sighting:
    """One frame's view of an object: where the camera was, and the box's columns."""

    at: Location
    x1: float
    x2: float
    width: int  # of the frame

    @property
    def clipped(self) -> bool:
        """The box touches the frame's side, so its centre is not the object's."""
        return self.x1 <= 2 or self.x2 >= self.width - 2


def locate(sightings: Sequence[Sighting], lens: Lens = Lens(), *, min_turn_deg: float = 2.0,
           max_range_m: float = 80.0) -> tuple[float, float] | None:
    """The object's (lat, lon) from its sightings, or None when they cannot place it.

    Sightings need the camera's heading; boxes cut by the frame's side are left out while
    at least two whole ones remain.

    Args:
        sightings: In any order.
        lens: The camera's field of view and mounting.
        min_turn_deg: Least spread of the rays' directions that places a point.
        max_range_m: Farthest a found point may be from any camera position.
    """
    usable = [s for s in sightings if s.at.heading is not None]
    whole = [s for s in usable if not s.clipped]
    usable = whole if len(whole) >= 2 else usable
    if len(usable) < 2:
        return None
    lat0, lon0 = usable[0].at.lat, usable[0].at.lon
    east_per_deg = math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    north_per_deg = math.radians(1) * EARTH_RADIUS_M
    origins = np.array([((s.at.lon - lon0) * east_per_deg, (s.at.lat - lat0) * north_per_deg)
                        for s in usable])
    azimuths = np.unwrap([_azimuth(s, lens) for s in usable])
    directions = np.stack([np.sin(azimuths), np.cos(azimuths)], axis=1)  # east, north
    spread = math.degrees(float(azimuths.max() - azimuths.min()))
    if spread < min_turn_deg:
        return None
    # Least squares: sum over rays of (I - d d^T) (p - o) = 0.
    projectors = np.eye(2)[None] - directions[:, :, None] * directions[:, None, :]
    a = projectors.sum(axis=0)
    b = np.einsum("nij,nj->i", projectors, origins)
    if np.linalg.cond(a) > 1e6:
        return None
    point = np.linalg.solve(a, b)
    ahead = np.einsum("ni,ni->n", point[None] - origins, directions)
    if (ahead <= 0).any() or np.linalg.norm(point[None] - origins, axis=1).max() > max_range_m:
        return None
    return (lat0 + float(point[1]) / north_per_deg, lon0 + float(point[0]) / east_per_deg)


def _azimuth(sighting: Sighting, lens: Lens) -> float:
    """The ray's direction, radians clockwise from north (the sighting has a heading)."""
    focal = (sighting.width / 2) / math.tan(math.radians(lens.hfov_deg) / 2)
    off_axis = math.atan(((sighting.x1 + sighting.x2) / 2 - sighting.width / 2) / focal)
    return math.radians((sighting.at.heading or 0.0) + lens.yaw_deg) + off_axis
