"""Street metres to WGS84, and GPS tracks as GPX and CSV.

A synthetic street is straight; it is laid on the map at an origin (lat, lon) with a compass
bearing. Over a few kilometres a local tangent plane is accurate to centimetres, far better
than GPS.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class StreetOnMap:
    """Where a street's (x, y) metres lie on the earth.

    Attributes:
        lat: Latitude of the street origin (x = y = 0), degrees WGS84.
        lon: Longitude of the origin.
        bearing_deg: Compass bearing of +x, degrees clockwise from north.
    """

    lat: float
    lon: float
    bearing_deg: float

    def to_wgs84(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) of street point (x along, y to the left), in degrees."""
        bearing = math.radians(self.bearing_deg)
        east = x * math.sin(bearing) - y * math.cos(bearing)
        north = x * math.cos(bearing) + y * math.sin(bearing)
        lat = self.lat + math.degrees(north / EARTH_RADIUS_M)
        lon = self.lon + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(self.lat))))
        return lat, lon

    def heading_deg(self, yaw_deg: float) -> float:
        """Compass heading of a street yaw (counter-clockwise from +x)."""
        return (self.bearing_deg - yaw_deg) % 360


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class GpsFix:
    """One GPS fix: UTC time, position, ground speed (m/s) and heading (degrees)."""

    time: datetime
    lat: float
    lon: float
    speed_mps: float
    heading_deg: float


def iso_utc(time: datetime) -> str:
    """ISO 8601 with milliseconds and a Z, as GPX and our truth files write UTC times."""
    return time.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def gpx_text(fixes: Sequence[GpsFix], name: str) -> str:
    """A GPX 1.1 track of the fixes."""
    points = "\n".join(
        f'      <trkpt lat="{f.lat:.7f}" lon="{f.lon:.7f}"><time>{iso_utc(f.time)}</time>'
        f"<extensions><speed>{f.speed_mps:.2f}</speed><course>{f.heading_deg:.1f}</course>"
        "</extensions></trkpt>"
        for f in fixes
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="streetwatch synth" '
        'xmlns="http://www.topografix.com/GPX/1/1">\n'
        f"  <trk><name>{escape(name)}</name>\n    <trkseg>\n{points}\n    </trkseg>\n  </trk>\n"
        "</gpx>\n"
    )


CSV_COLUMNS = ("time_utc", "lat", "lon", "speed_mps", "heading_deg")


def csv_text(fixes: Sequence[GpsFix]) -> str:
    """The fixes as CSV with a header row (``CSV_COLUMNS``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for f in fixes:
        writer.writerow([iso_utc(f.time), f"{f.lat:.7f}", f"{f.lon:.7f}", f"{f.speed_mps:.2f}",
                         f"{f.heading_deg:.1f}"])
    return buffer.getvalue()
