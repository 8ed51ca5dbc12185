from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streetwatch.datasets.synth.geo import GpsFix, StreetOnMap, csv_text, distance_m, gpx_text


def _sign(value: float) -> int:
    return 0 if abs(value) < 1e-9 else (1 if value > 0 else -1)


@pytest.mark.parametrize(("bearing", "d_lat", "d_lon"), [
    (0.0, 1, 0),     # +x points north
    (90.0, 0, 1),    # +x points east
    (180.0, -1, 0),
    (270.0, 0, -1),
])
def test_street_axis_follows_the_bearing(bearing: float, d_lat: int, d_lon: int) -> None:
    street = StreetOnMap(30.0, 120.0, bearing)
    lat, lon = street.to_wgs84(100.0, 0.0)
    assert (_sign(lat - 30.0), _sign(lon - 120.0)) == (d_lat, d_lon)
    assert distance_m((30.0, 120.0), (lat, lon)) == pytest.approx(100.0, rel=1e-4)


def test_left_of_the_street_is_left_of_the_driver() -> None:
    street = StreetOnMap(30.0, 120.0, 0.0)  # driving north: left is west
    lat, lon = street.to_wgs84(0.0, 10.0)
    assert lon < 120.0 and lat == pytest.approx(30.0)
    assert street.heading_deg(0.0) == 0.0 and street.heading_deg(90.0) == 270.0


def test_track_formats_carry_every_fix() -> None:
    fixes = [GpsFix(datetime(2026, 5, 12, 2, 0, s, tzinfo=UTC), 30.0 + s * 1e-5, 120.0, 5.0,
                    12.5) for s in range(3)]
    text = csv_text(fixes)
    assert text.splitlines()[0] == "time_utc,lat,lon,speed_mps,heading_deg"
    assert text.splitlines()[1] == "2026-05-12T02:00:00.000Z,30.0000000,120.0000000,5.00,12.5"
    gpx = gpx_text(fixes, "a & b")
    assert gpx.count("<trkpt ") == 3 and "a &amp; b" in gpx
