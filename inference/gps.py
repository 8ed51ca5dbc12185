"""GPS tracks from patrol vehicles (GPX, NMEA 0183 or CSV), and where a vehicle was at a time.

Times are UTC. A position between two fixes is interpolated linearly (fixes come every
second or so: metres apart, where the earth is flat enough); a time outside the track, or
inside a gap longer than ``max_gap_s`` (a tunnel, a lost fix), has no position.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from defusedxml import ElementTree

from streetwatch.inference.types import Location

Floats = npt.NDArray[np.float64]


class TrackError(ValueError):
    """A GPS track that cannot be read; the message names the file and line or point."""


@dataclass(frozen=True)
class GpsTrack:
    """Fixes in time order: seconds since the epoch (UTC), degrees, m/s (NaN: unknown)."""

    source: str
    t: Floats
    lat: Floats
    lon: Floats
    speed: Floats
    heading: Floats

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(float(self.t[0]), UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(float(self.t[-1]), UTC)

    def covers(self, start: datetime, end: datetime, slack_s: float = 1.0) -> bool:
        """Whether the track spans ``start..end`` (give or take ``slack_s``)."""
        return (float(self.t[0]) <= start.timestamp() + slack_s
                and float(self.t[-1]) >= end.timestamp() - slack_s)

    def at(self, time: datetime, max_gap_s: float = 10.0) -> Location | None:
        """The interpolated position at ``time``, or None outside the track or in a gap."""
        ts = time.timestamp()
        if ts < self.t[0] or ts > self.t[-1]:
            return None
        i = int(np.searchsorted(self.t, ts, side="right")) - 1
        j = min(i + 1, len(self.t) - 1)
        span = float(self.t[j] - self.t[i])
        if span > max_gap_s:
            if ts != self.t[i]:
                return None
            j = i  # exactly at a fix before a gap: the fix itself
        w = 0.0 if span == 0 else (ts - float(self.t[i])) / span
        lat = float(self.lat[i] + w * (self.lat[j] - self.lat[i]))
        lon = float(self.lon[i] + w * (self.lon[j] - self.lon[i]))
        heading = self.heading[i]
        moved = (self.lat[i], self.lon[i]) != (self.lat[j], self.lon[j])
        if math.isnan(heading) and moved:
            heading = _bearing(self.lat[i], self.lon[i], self.lat[j], self.lon[j])
        speed = self.speed[i]
        return Location(lat, lon, None if math.isnan(heading) else float(heading),
                        None if math.isnan(speed) else float(speed))


def _bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing in degrees from north, clockwise."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360) % 360


def _parse_time(text: str, where: str) -> float:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TrackError(f"{where}: time {text!r} is not ISO 8601") from None
    if value.tzinfo is None:
        raise TrackError(f"{where}: time {text!r} has no time zone; GPS times are UTC ('Z')")
    return value.timestamp()


def _check_position(lat: float, lon: float, where: str) -> None:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise TrackError(f"{where}: position {lat}, {lon} is not a WGS84 latitude, longitude")


def _track(source: Path, rows: list[tuple[float, float, float, float, float]]) -> GpsTrack:
    if len(rows) < 2:
        raise TrackError(f"{source}: a track needs at least 2 fixes, found {len(rows)}")
    rows.sort(key=lambda r: r[0])
    a = np.array(rows, np.float64)
    return GpsTrack(str(source), a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])


def read_gpx(path: Path) -> GpsTrack:
    """Track points (``trkpt``) with their ``time``; speed and course from extensions."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise TrackError(f"{path}: not valid XML ({exc})") from None
    if root is None:
        raise TrackError(f"{path}: empty GPX document")
    rows = []
    points = (p for p in root.iter() if p.tag.endswith("trkpt"))
    for n, point in enumerate(points, start=1):
        where = f"{path}: trkpt {n}"
        children = {child.tag.rsplit("}", 1)[-1]: child for child in point.iter()}
        if "time" not in children or not (children["time"].text or "").strip():
            raise TrackError(f"{where}: no <time>")
        try:
            lat, lon = float(point.get("lat", "")), float(point.get("lon", ""))
        except ValueError:
            raise TrackError(f"{where}: lat/lon attributes missing or not numbers") from None
        _check_position(lat, lon, where)
        try:
            speed = float(children["speed"].text or "nan") if "speed" in children else math.nan
            course = float(children["course"].text or "nan") if "course" in children else math.nan
        except ValueError:
            raise TrackError(f"{where}: <speed> and <course> must be numbers") from None
        rows.append((_parse_time(children["time"].text or "", where), lat, lon, speed, course))
    return _track(path, rows)


CSV_TIME, CSV_LAT, CSV_LON = ("time_utc", "time"), ("lat", "latitude"), ("lon", "longitude")


def read_csv(path: Path) -> GpsTrack:
    """A header row naming ``time_utc`` (or ``time``), ``lat``, ``lon`` and optionally
    ``speed_mps`` and ``heading_deg``; times ISO 8601 with a zone."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrackError(f"{path}: not UTF-8 text ({exc.reason})") from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = {f.strip().lower(): f for f in reader.fieldnames or []}

        def column(names: tuple[str, ...]) -> str:
            for name in names:
                if name in fields:
                    return fields[name]
            raise TrackError(f"{path}:1: no {names[0]!r} column (header: {reader.fieldnames})")

        time_col, lat_col, lon_col = column(CSV_TIME), column(CSV_LAT), column(CSV_LON)
        rows = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                lat, lon = float(row[lat_col]), float(row[lon_col])
                speed = float(row.get(fields.get("speed_mps", ""), "") or "nan")
                heading = float(row.get(fields.get("heading_deg", ""), "") or "nan")
            except (TypeError, ValueError):
                raise TrackError(f"{where}: lat, lon, speed and heading must be numbers") from None
            _check_position(lat, lon, where)
            rows.append((_parse_time(row[time_col] or "", where), lat, lon, speed, heading))
    return _track(path, rows)


def _nmea_degrees(value: str, hemisphere: str) -> float:
    head, minutes = divmod(float(value), 100)
    degrees = head + minutes / 60
    return -degrees if hemisphere in ("S", "W") else degrees


def read_nmea(path: Path) -> GpsTrack:
    """RMC sentences (``$GPRMC``, ``$GNRMC``...): date, time, position, speed, course.
    Sentences with a bad checksum are errors; fixes flagged void (``V``) are skipped."""
    rows = []
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    for line, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text.startswith("$") or text[3:6] != "RMC":
            continue
        where = f"{path}:{line}"
        body, _, checksum = text[1:].partition("*")
        if checksum:
            expected = 0
            for char in body:
                expected ^= ord(char)
            if checksum[:2].upper() != f"{expected:02X}":
                raise TrackError(f"{where}: checksum {checksum[:2]} != {expected:02X}")
        fields = body.split(",")
        if len(fields) < 10:
            raise TrackError(f"{where}: an RMC sentence has at least 10 fields")
        if fields[2] != "A":
            continue
        try:
            whole, _, fraction = fields[1].partition(".")
            time = datetime.strptime(fields[9] + whole, "%d%m%y%H%M%S").replace(
                tzinfo=UTC).timestamp() + float("0." + (fraction or "0"))
            lat = _nmea_degrees(fields[3], fields[4])
            lon = _nmea_degrees(fields[5], fields[6])
            speed = float(fields[7]) * 0.514444 if fields[7] else math.nan
            course = float(fields[8]) if fields[8] else math.nan
        except ValueError:
            raise TrackError(f"{where}: unreadable RMC time, position, speed or course") from None
        _check_position(lat, lon, where)
        rows.append((time, lat, lon, speed, course))
    return _track(path, rows)


def read_track(path: Path, suffix: str | None = None) -> GpsTrack:
    """Read a track by its suffix (or ``suffix``, for a file stored under another name):
    ``.gpx``, ``.csv``, or ``.nmea``/``.nma``/``.txt``/``.log``.

    Raises:
        TrackError: an unknown suffix, an unreadable file, or a bad fix (naming where).
    """
    readers = {".gpx": read_gpx, ".csv": read_csv, ".nmea": read_nmea, ".nma": read_nmea,
               ".txt": read_nmea, ".log": read_nmea}
    reader = readers.get((suffix or path.suffix).lower())
    if reader is None:
        raise TrackError(f"{path}: unknown track format; use .gpx, .csv or .nmea")
    if not path.is_file():
        raise TrackError(f"{path}: GPS track not found")
    return reader(path)
