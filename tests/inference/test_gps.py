"""GPS tracks as a patrol vehicle's logger writes them (GPX, CSV, NMEA RMC), read from real
files: the same fixes whatever the format, interpolation, gaps, headings, and errors that name
the file and the line or point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from streetwatch.datasets.synth.geo import GpsFix, csv_text, gpx_text, iso_utc
from streetwatch.inference.gps import GpsTrack, TrackError, read_track

T0 = datetime(2026, 5, 12, 2, 0, 0, tzinfo=UTC)
KNOT_MPS = 0.514444

# Five fixes heading north-east through Shanghai; fractional seconds on purpose.
OFFSETS_S = (0.0, 1.0, 2.0, 3.5, 4.5)
FIXES = [GpsFix(T0 + timedelta(seconds=s), 31.23 + k * 1e-4, 121.47 + k * 1.2e-4,
                12.34 + k, 40.0 + k)
         for k, s in enumerate(OFFSETS_S)]


def at_s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def nmea(body: str) -> str:
    """A sentence with its checksum: the XOR of every character between '$' and '*'."""
    checksum = 0
    for char in body:
        checksum ^= ord(char)
    return f"${body}*{checksum:02X}"


def _ddmm(value: float, width: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{width}d}{minutes:09.6f}"


def rmc(fix: GpsFix, talker: str = "GP", status: str = "A") -> str:
    """An NMEA 0183 RMC sentence for the fix (speed in knots, position as ddmm.mmmmmm)."""
    t = fix.time
    body = ",".join([
        f"{talker}RMC", f"{t:%H%M%S}.{t.microsecond // 10_000:02d}", status,
        _ddmm(fix.lat, 2), "N" if fix.lat >= 0 else "S",
        _ddmm(fix.lon, 3), "E" if fix.lon >= 0 else "W",
        f"{fix.speed_mps / KNOT_MPS:.4f}", f"{fix.heading_deg:.1f}", f"{t:%d%m%y}", "", "", "A",
    ])
    return nmea(body)


def nmea_text(fixes: Sequence[GpsFix]) -> str:
    """RMC sentences alternating GP and GN talkers, among sentences the reader ignores."""
    lines = [nmea("GPGGA,020000.00,3113.8000,N,12128.2000,E,1,08,0.9,10.0,M,0.0,M,,")]
    for k, fix in enumerate(fixes):
        lines.append(rmc(fix, "GN" if k % 2 else "GP"))
        lines.append(nmea("GPGSA,A,3,01,02,03,04,,,,,,,,,1.5,0.9,1.2"))
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def assert_same_fixes(track: GpsTrack, fixes: Sequence[GpsFix]) -> None:
    np.testing.assert_allclose(track.t, [f.time.timestamp() for f in fixes], rtol=0, atol=1e-6)
    np.testing.assert_allclose(track.lat, [f.lat for f in fixes], rtol=0, atol=1e-7)
    np.testing.assert_allclose(track.lon, [f.lon for f in fixes], rtol=0, atol=1e-7)
    np.testing.assert_allclose(track.speed, [f.speed_mps for f in fixes], rtol=0, atol=1e-4)
    np.testing.assert_allclose(track.heading, [f.heading_deg for f in fixes], rtol=0, atol=1e-6)


# -- formats --------------------------------------------------------------------------------

def test_nmea_helper_matches_a_published_sentence() -> None:
    assert nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W") == (
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A")


@pytest.mark.parametrize(("name", "kind"), [
    ("track.gpx", "gpx"), ("track.csv", "csv"), ("track.nmea", "nmea"), ("track.LOG", "nmea"),
    ("track.txt", "nmea"),
])
def test_every_format_reads_to_the_same_fixes(tmp_path: Path, name: str, kind: str) -> None:
    text = {"gpx": gpx_text(FIXES, "patrol 7"), "csv": csv_text(FIXES),
            "nmea": nmea_text(FIXES)}[kind]
    path = write(tmp_path / name, text)
    track = read_track(path)
    assert track.source == str(path)
    assert_same_fixes(track, FIXES)
    assert track.start == T0 and track.end == at_s(4.5)


def test_rows_out_of_time_order_are_sorted(tmp_path: Path) -> None:
    header, *rows = csv_text(FIXES).splitlines()
    path = write(tmp_path / "track.csv", "\n".join([header, *reversed(rows)]) + "\n")
    assert_same_fixes(read_track(path), FIXES)


def test_csv_alternative_column_names_in_any_order(tmp_path: Path) -> None:
    path = write(tmp_path / "track.csv", "Longitude, Latitude,Time\n"
                 "121.47,31.23,2026-05-12T10:00:00+08:00\n"
                 "121.48,31.24,2026-05-12T02:00:01Z\n")
    track = read_track(path)
    np.testing.assert_allclose(track.t, [T0.timestamp(), T0.timestamp() + 1])
    np.testing.assert_allclose(track.lat, [31.23, 31.24])
    np.testing.assert_allclose(track.lon, [121.47, 121.48])
    assert np.isnan(track.speed).all() and np.isnan(track.heading).all()


def test_nmea_southern_and_western_hemispheres_are_negative(tmp_path: Path) -> None:
    fixes = [GpsFix(at_s(k), -33.8688 - k * 1e-4, -70.6693 - k * 1e-4, 3.0, 200.0)
             for k in range(3)]
    track = read_track(write(tmp_path / "santiago.nmea", nmea_text(fixes)))
    assert_same_fixes(track, fixes)


def test_void_nmea_fixes_are_skipped(tmp_path: Path) -> None:
    lost = GpsFix(at_s(1.0), 10.0, 10.0, 0.0, 0.0)
    text = "\n".join([rmc(FIXES[0]), rmc(lost, status="V"), rmc(FIXES[2], "GN"),
                      rmc(FIXES[3])]) + "\n"
    track = read_track(write(tmp_path / "track.nmea", text))
    assert_same_fixes(track, [FIXES[0], FIXES[2], FIXES[3]])


# -- positions in time ----------------------------------------------------------------------

@pytest.fixture
def track(tmp_path: Path) -> GpsTrack:
    return read_track(write(tmp_path / "track.gpx", gpx_text(FIXES, "patrol")))


def test_position_half_way_between_fixes_is_interpolated(track: GpsTrack) -> None:
    where = track.at(at_s(2.75))  # half-way between the fixes at 2.0 s and 3.5 s
    assert where is not None
    assert where.lat == pytest.approx((FIXES[2].lat + FIXES[3].lat) / 2, abs=1e-9)
    assert where.lon == pytest.approx((FIXES[2].lon + FIXES[3].lon) / 2, abs=1e-9)
    assert where.heading == pytest.approx(FIXES[2].heading_deg)  # the fix's own course
    assert where.speed_mps == pytest.approx(FIXES[2].speed_mps)
    quarter = track.at(at_s(0.25))
    assert quarter is not None
    assert quarter.lat == pytest.approx(FIXES[0].lat + 0.25 * 1e-4, abs=1e-9)


def test_positions_at_the_fixes_themselves(track: GpsTrack) -> None:
    for fix in FIXES:
        where = track.at(fix.time)
        assert where is not None
        assert where.lat == pytest.approx(fix.lat, abs=1e-9)
        assert where.lon == pytest.approx(fix.lon, abs=1e-9)


def test_no_position_outside_the_track(track: GpsTrack) -> None:
    assert track.at(at_s(-0.001)) is None
    assert track.at(at_s(-3600)) is None
    assert track.at(at_s(4.501)) is None


def test_no_position_inside_a_long_gap(tmp_path: Path) -> None:
    fixes = [GpsFix(at_s(s), 31.23 + s * 1e-5, 121.47, 5.0, 0.0) for s in (0, 1, 2, 40, 41)]
    gappy = read_track(write(tmp_path / "tunnel.csv", csv_text(fixes)))
    assert gappy.at(at_s(1.5)) is not None
    assert gappy.at(at_s(20.0)) is None  # 38 s without a fix > max_gap_s = 10
    assert gappy.at(at_s(20.0), max_gap_s=5.0) is None
    bridged = gappy.at(at_s(21.0), max_gap_s=60.0)
    assert bridged is not None
    assert bridged.lat == pytest.approx(31.23 + 21 * 1e-5, abs=1e-9)
    assert gappy.at(at_s(40.5)) is not None


def test_heading_from_neighbours_when_the_track_has_none(tmp_path: Path) -> None:
    # East for a second, then north; no heading or speed column.
    path = write(tmp_path / "track.csv", "time_utc,lat,lon\n"
                 "2026-05-12T02:00:00Z,31.2300,121.4700\n"
                 "2026-05-12T02:00:01Z,31.2300,121.4701\n"
                 "2026-05-12T02:00:02Z,31.2301,121.4701\n")
    plain = read_track(path)
    east, north = plain.at(at_s(0.5)), plain.at(at_s(1.5))
    assert east is not None and north is not None
    assert east.heading == pytest.approx(90.0, abs=0.01)
    assert north.heading == pytest.approx(0.0, abs=1e-6)
    assert east.speed_mps is None and north.speed_mps is None


def test_gpx_without_extensions_computes_heading(tmp_path: Path) -> None:
    points = "".join(f'<trkpt lat="{lat}" lon="121.47"><time>2026-05-12T02:00:0{s}Z</time>'
                     "</trkpt>" for s, lat in enumerate((31.2302, 31.2301, 31.2300)))
    path = write(tmp_path / "south.gpx", '<?xml version="1.0"?><gpx version="1.1" '
                 f'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>{points}'
                 "</trkseg></trk></gpx>")
    where = read_track(path).at(at_s(0.5))
    assert where is not None and where.heading == pytest.approx(180.0, abs=1e-6)


def test_covers(track: GpsTrack) -> None:
    start, end = at_s(0.0), at_s(4.5)
    assert track.covers(start, end)
    assert track.covers(at_s(1.0), at_s(3.0))
    assert track.covers(at_s(-0.9), at_s(5.4))  # within the default 1 s of slack
    assert not track.covers(at_s(-1.5), end)
    assert not track.covers(start, at_s(6.0))
    assert not track.covers(at_s(-0.5), end, slack_s=0.0)
    assert track.covers(at_s(-5.0), at_s(9.0), slack_s=5.0)


# -- bad input ------------------------------------------------------------------------------

def test_csv_row_with_a_non_number_latitude_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "track.csv", "time_utc,lat,lon\n"
                 "2026-05-12T02:00:00Z,31.23,121.47\n"
                 "2026-05-12T02:00:01Z,north,121.47\n")
    with pytest.raises(TrackError, match="must be numbers") as caught:
        read_track(path)
    assert "track.csv:3" in str(caught.value)


def test_csv_without_a_lat_column(tmp_path: Path) -> None:
    path = write(tmp_path / "track.csv", "time_utc,y,lon\n2026-05-12T02:00:00Z,31.23,121.47\n")
    with pytest.raises(TrackError, match=r"track\.csv:1: no 'lat' column"):
        read_track(path)


def test_empty_csv(tmp_path: Path) -> None:
    with pytest.raises(TrackError, match=r"track\.csv:1: no 'time_utc' column"):
        read_track(write(tmp_path / "track.csv", ""))


@pytest.mark.parametrize("name", ["track.csv", "track.gpx"])
def test_a_time_without_a_zone(tmp_path: Path, name: str) -> None:
    local = [GpsFix(f.time.replace(tzinfo=None), f.lat, f.lon, f.speed_mps, f.heading_deg)
             for f in FIXES]
    text = csv_text(local) if name.endswith(".csv") else gpx_text(local, "naive")
    with pytest.raises(TrackError, match="no time zone") as caught:
        read_track(write(tmp_path / name, text))
    assert name in str(caught.value)
    if name.endswith(".csv"):
        assert f"{name}:2:" in str(caught.value)


def test_a_time_that_is_not_iso(tmp_path: Path) -> None:
    path = write(tmp_path / "track.csv", "time,lat,lon\n12/05/2026 02:00,31.23,121.47\n")
    with pytest.raises(TrackError, match=r"track\.csv:2: time .* is not ISO 8601"):
        read_track(path)


@pytest.mark.parametrize(("lat", "lon"), [(91.0, 121.47), (-90.5, 121.47), (31.23, 181.0),
                                          (float("nan"), 121.47)])
def test_an_out_of_range_position(tmp_path: Path, lat: float, lon: float) -> None:
    fixes = [*FIXES[:2], GpsFix(at_s(9), lat, lon, 0.0, 0.0)]
    with pytest.raises(TrackError, match="not a WGS84") as caught:
        read_track(write(tmp_path / "track.csv", csv_text(fixes)))
    assert "track.csv:4" in str(caught.value)


def test_gpx_out_of_range_latitude_names_the_point(tmp_path: Path) -> None:
    fixes = [FIXES[0], GpsFix(at_s(1), 95.0, 121.47, 0.0, 0.0)]
    with pytest.raises(TrackError, match=r"track\.gpx: trkpt \d+: position 95\.0"):
        read_track(write(tmp_path / "track.gpx", gpx_text(fixes, "bad")))


def test_nmea_wrong_checksum_names_the_line(tmp_path: Path) -> None:
    good = [rmc(f) for f in FIXES[:3]]
    broken = good[1][:-2] + ("00" if not good[1].endswith("00") else "11")
    path = write(tmp_path / "track.nmea", "\n".join([good[0], broken, good[2]]) + "\n")
    with pytest.raises(TrackError, match=r"track\.nmea:2: checksum"):
        read_track(path)


def test_nmea_unreadable_position_names_the_line(tmp_path: Path) -> None:
    bad = nmea("GPRMC,020001.00,A,,N,12128.2000,E,0.0,0.0,120526,,,A")
    path = write(tmp_path / "track.nmea", "\n".join([rmc(FIXES[0]), "", bad]) + "\n")
    with pytest.raises(TrackError, match=r"track\.nmea:3: unreadable"):
        read_track(path)


@pytest.mark.parametrize(("name", "kind"), [("one.gpx", "gpx"), ("one.csv", "csv"),
                                            ("one.nmea", "nmea")])
def test_only_one_fix(tmp_path: Path, name: str, kind: str) -> None:
    text = {"gpx": gpx_text(FIXES[:1], "one"), "csv": csv_text(FIXES[:1]),
            "nmea": nmea_text(FIXES[:1])}[kind]
    with pytest.raises(TrackError, match=rf"{name}: a track needs at least 2 fixes, found 1"):
        read_track(write(tmp_path / name, text))


def test_only_void_nmea_fixes(tmp_path: Path) -> None:
    text = "\n".join(rmc(f, status="V") for f in FIXES) + "\n"
    with pytest.raises(TrackError, match="found 0"):
        read_track(write(tmp_path / "lost.nmea", text))


@pytest.mark.parametrize("text", ["time_utc,lat,lon\n", "{not xml", ""])
def test_gpx_that_is_not_xml(tmp_path: Path, text: str) -> None:
    with pytest.raises(TrackError, match=r"track\.gpx: not valid XML"):
        read_track(write(tmp_path / "track.gpx", text))


def test_gpx_trkpt_without_time(tmp_path: Path) -> None:
    text = gpx_text(FIXES[:3], "patrol").replace(f"<time>{iso_utc(FIXES[1].time)}</time>", "")
    assert text.count("<time>") == 2
    with pytest.raises(TrackError, match=r"track\.gpx: trkpt \d+: no <time>"):
        read_track(write(tmp_path / "track.gpx", text))


def test_gpx_error_names_the_point_by_its_number(tmp_path: Path) -> None:
    text = gpx_text(FIXES[:3], "patrol").replace(
        f'lat="{FIXES[1].lat:.7f}"', 'lat="north"')
    with pytest.raises(TrackError, match=r"trkpt 2: lat/lon"):
        read_track(write(tmp_path / "track.gpx", text))


def test_csv_error_line_counts_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "track.csv", "time_utc,lat,lon\n"
                 "2026-05-12T02:00:00Z,31.23,121.47\n"
                 "\n"
                 "2026-05-12T02:00:01Z,north,121.47\n")
    with pytest.raises(TrackError, match=r"track\.csv:4:"):
        read_track(path)


def test_gpx_bad_speed_names_the_point(tmp_path: Path) -> None:
    text = gpx_text(FIXES[:2], "patrol").replace("<speed>12.34</speed>", "<speed>fast</speed>")
    with pytest.raises(TrackError, match=r"track\.gpx: trkpt"):
        read_track(write(tmp_path / "track.gpx", text))


def test_unknown_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "track.kml", gpx_text(FIXES, "patrol"))
    with pytest.raises(TrackError, match=r"track\.kml: unknown track format"):
        read_track(path)


@pytest.mark.parametrize("name", ["missing.gpx", "missing.csv", "missing.nmea"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(TrackError, match=rf"{name}: GPS track not found"):
        read_track(tmp_path / name)

