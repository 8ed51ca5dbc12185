"""Placing a roadside object from a moving camera's sightings: rays from the GPS fixes cross
where it stands."""

from __future__ import annotations

import math

import pytest

from streetwatch.inference.cases import Place, distance_m
from streetwatch.inference.geolocate import EARTH_RADIUS_M, Lens, Sighting, locate
from streetwatch.inference.types import Location

LAT0, LON0 = 30.25, 120.15
WIDTH = 1280


def offset(east_m: float, north_m: float) -> tuple[float, float]:
    """(lat, lon) of a point east and north of the origin."""
    north_per_deg = math.radians(1) * EARTH_RADIUS_M
    return (LAT0 + north_m / north_per_deg,
            LON0 + east_m / (north_per_deg * math.cos(math.radians(LAT0))))


def sightings(target: tuple[float, float], along: list[float], *, heading: float = 0.0,
              hfov: float = 85.0, half_width_px: float = 20.0,
              yaw: float = 0.0) -> list[Sighting]:
    """A camera driving along ``heading`` sees ``target`` (east, north, metres) from each
    distance in ``along``; boxes drawn by a pinhole of ``hfov``."""
    focal = (WIDTH / 2) / math.tan(math.radians(hfov) / 2)
    rad = math.radians(heading)
    out = []
    for s in along:
        cam_e, cam_n = s * math.sin(rad), s * math.cos(rad)
        de, dn = target[0] - cam_e, target[1] - cam_n
        azimuth = math.atan2(de, dn) - math.radians(heading + yaw)
        u = WIDTH / 2 + focal * math.tan(azimuth)
        lat, lon = offset(cam_e, cam_n)
        out.append(Sighting(Location(lat, lon, heading=heading), u - half_width_px,
                            u + half_width_px, WIDTH))
    return out


def error_m(found: tuple[float, float] | None, target: tuple[float, float]) -> float:
    assert found is not None
    truth = offset(*target)
    return distance_m(Place(lat=found[0], lon=found[1]), Place(lat=truth[0], lon=truth[1]))


@pytest.mark.parametrize("heading", [0.0, 90.0, 221.8, 359.0])
def test_a_poster_to_the_right_is_placed_where_it_stands(heading: float) -> None:
    rad = math.radians(heading)
    # 8 m right of the road and 30 m along it, whatever the direction of travel
    target = (30 * math.sin(rad) + 8 * math.cos(rad), 30 * math.cos(rad) - 8 * math.sin(rad))
    seen = sightings(target, [10.0, 12.0, 14.0, 16.0], heading=heading)
    assert error_m(locate(seen), target) < 0.1
    # the vehicle's own place at the last sighting is 14 m short of it
    last = seen[-1].at
    assert error_m((last.lat, last.lon), target) > 14


def test_a_wrong_lens_moves_the_place_across_the_street_not_along_it() -> None:
    target = (8.0, 30.0)
    seen = sightings(target, [10.0, 13.0, 16.0], hfov=70.0)
    found = locate(seen, Lens(hfov_deg=100.0))
    assert found is not None
    north_per_deg = math.radians(1) * EARTH_RADIUS_M
    along = (found[0] - LAT0) * north_per_deg
    assert abs(along - 30.0) < 0.5  # along the street: right
    assert error_m(found, target) > 1.0  # across it: the lens's fault


def test_a_side_looking_camera() -> None:
    target = (12.0, 5.0)
    seen = sightings(target, [0.0, 2.0, 4.0], yaw=60.0)
    assert error_m(locate(seen, Lens(yaw_deg=60.0)), target) < 0.1


def test_rays_that_barely_turn_place_nothing() -> None:
    far_ahead = (0.5, 200.0)
    assert locate(sightings(far_ahead, [0.0, 1.0, 2.0])) is None  # within min_turn_deg
    assert locate(sightings((8.0, 30.0), [10.0])) is None  # one ray
    assert locate([]) is None


def test_sightings_without_a_heading_are_ignored() -> None:
    seen = sightings((8.0, 30.0), [10.0, 14.0])
    blind = [Sighting(Location(s.at.lat, s.at.lon), s.x1, s.x2, s.width) for s in seen]
    assert locate(blind) is None
    assert locate(seen + blind[:1]) is not None


def test_boxes_cut_by_the_frame_side_are_left_out_while_two_whole_ones_remain() -> None:
    target = (8.0, 30.0)
    seen = sightings(target, [10.0, 13.0, 16.0])
    cut = Sighting(seen[-1].at, seen[-1].x1, WIDTH, WIDTH)  # the centre of what is left
    assert cut.clipped
    assert error_m(locate([*seen[:2], cut]), target) < 0.1


def test_a_crossing_behind_the_camera_or_out_of_range_places_nothing() -> None:
    # rays that diverge: as if the object moved against the camera's motion
    seen = sightings((8.0, 30.0), [10.0, 14.0])
    swapped = [Sighting(seen[0].at, seen[1].x1, seen[1].x2, WIDTH),
               Sighting(seen[1].at, seen[0].x1, seen[0].x2, WIDTH)]
    assert locate(swapped) is None
    assert locate(sightings((8.0, 30.0), [10.0, 14.0]), max_range_m=10.0) is None
