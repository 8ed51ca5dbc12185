"""Synthetic videos: the truth agrees with the frames, the GPS track with the drive, the
camera zones with where the parked car stands."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from click.testing import CliRunner
from defusedxml import ElementTree
from shapely.geometry import Point, Polygon

from streetwatch.datasets.synth.geo import distance_m
from streetwatch.service.cli import main

SIZE = ("--size", "320x180")


def _video(out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["data", "synth-video", "--out", str(out), *SIZE, *args])
    assert result.exit_code == 0, result.output
    truth: dict[str, Any] = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    return truth


def _decoded_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def dashcam(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dashcam") / "drive"
    return out, _video(out, "--kind", "dashcam", "--seconds", "3", "--seed", "11")


@pytest.fixture(scope="module")
def cctv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("cctv") / "clip"
    return out, _video(out, "--kind", "cctv", "--seconds", "600", "--fps", "0.1",
                       "--seed", "4")


def test_dashcam_frames_match_truth(dashcam: tuple[Path, dict[str, Any]]) -> None:
    out, truth = dashcam
    assert truth["fps"] == 25 and truth["frames"] == 75
    assert _decoded_frames(out / "video.mp4") == 75
    violations = [o for o in truth["objects"] if o["violation"]]
    assert violations, "a drive past a street should see some violation"
    for obj in truth["objects"]:
        frames = [f["frame"] for f in obj["frames"]]
        assert frames == sorted(frames) and all(0 <= f < 75 for f in frames)
        for frame in obj["frames"]:
            x1, y1, x2, y2 = frame["box"]
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 180


def test_dashcam_static_objects_grow_as_the_camera_approaches(
        dashcam: tuple[Path, dict[str, Any]]) -> None:
    _, truth = dashcam
    checked = 0
    for obj in truth["objects"]:
        if obj["moving"] or len(obj["frames"]) < 10:
            continue
        first, last = obj["frames"][0], obj["frames"][-1]
        height = [f["box"][3] - f["box"][1] for f in (first, last)]
        # The camera drives towards everything static ahead: nearer means taller.
        assert height[1] >= height[0], obj["id"]
        assert obj["position_m"][0] > 0  # ahead of where the drive starts
        checked += 1
    assert checked >= 2


def test_dashcam_gps_track_covers_the_drive(dashcam: tuple[Path, dict[str, Any]]) -> None:
    out, truth = dashcam
    rows = list(csv.DictReader((out / "track.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["time_utc", "lat", "lon", "speed_mps", "heading_deg"]
    start = datetime.fromisoformat(truth["start_utc"])
    times = [datetime.fromisoformat(r["time_utc"]) for r in rows]
    assert times[0] == start and times[-1] >= start + timedelta(seconds=3)
    speed = float(rows[0]["speed_mps"])
    assert 10 / 3.6 <= speed <= 40 / 3.6
    travelled = distance_m((float(rows[0]["lat"]), float(rows[0]["lon"])),
                           (float(rows[-1]["lat"]), float(rows[-1]["lon"])))
    assert travelled == pytest.approx(speed * 3, abs=4 * 2.0 + 1)  # within GPS noise
    gpx = ElementTree.parse(out / "track.gpx").getroot()
    assert gpx is not None
    points = gpx.findall(".//{http://www.topografix.com/GPX/1/1}trkpt")
    assert len(points) == len(rows)
    assert float(points[0].attrib["lat"]) == pytest.approx(float(rows[0]["lat"]))


def test_cctv_events_match_the_frames(cctv: tuple[Path, dict[str, Any]]) -> None:
    out, truth = cctv
    assert truth["frames"] == 60 and _decoded_frames(out / "video.mp4") == 60
    times = truth["frame_times_s"]
    assert times[1] - times[0] == pytest.approx(10.0)  # compressed: true seconds per frame
    objects = {o["id"]: o for o in truth["objects"]}
    events = {e["kind"]: e for e in truth["events"]}
    assert set(events) == {"parking", "stop", "vending"}
    for kind, event in events.items():
        seen = [times[f["frame"]] for f in objects[event["object"]]["frames"]
                if f["class"] == event["class"]]
        assert seen, kind
        assert event["start_s"] <= min(seen) and max(seen) <= event["end_s"], kind
        assert min(seen) - event["start_s"] < 10.0 + 1e-6
    assert events["parking"]["end_s"] - events["parking"]["start_s"] == pytest.approx(360)
    start = datetime.fromisoformat(truth["start_utc"])
    parking = events["parking"]
    assert datetime.fromisoformat(parking["end_utc"]) == start + timedelta(seconds=parking["end_s"])


def test_cctv_parked_car_stands_in_the_no_parking_zone(cctv: tuple[Path, dict[str, Any]]
                                                       ) -> None:
    out, truth = cctv
    camera = yaml.safe_load((out / "camera.yaml").read_text(encoding="utf-8"))
    zones = {z["type"]: Polygon(z["points"]) for z in camera["zones"]}
    assert {"no_parking", "sidewalk"} <= set(zones)
    parked = next(o for o in truth["objects"] if o["id"] == "parked-car")
    for frame in parked["frames"]:
        if frame["class"] != "illegal_parking":
            continue
        x1, _, x2, y2 = frame["box"]
        bottom_centre = Point((x1 + x2) / 2 / 320, y2 / 180)
        assert zones["no_parking"].buffer(0.03).contains(bottom_centre), frame


def test_bad_video_arguments_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "synth-video", "--out", str(tmp_path / "v"),
                                       "--kind", "drone", "--seconds", "2"])
    assert result.exit_code == 2 and "drone" in result.output
    result = CliRunner().invoke(main, ["data", "synth-video", "--out", str(tmp_path / "v"),
                                       "--kind", "cctv", "--seconds", "0"])
    assert result.exit_code == 2
    assert not (tmp_path / "v").exists()


def test_same_seed_same_video_whatever_the_workers(tmp_path: Path) -> None:
    args = ("--kind", "dashcam", "--seconds", "1", "--seed", "21")
    one = _video(tmp_path / "one", *args, "--workers", "1")
    two = _video(tmp_path / "two", *args, "--workers", "2")
    assert one == two
    for name in ("track.csv", "track.gpx"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    first = [cv2.VideoCapture(str(tmp_path / run / "video.mp4")).read()[1]
             for run in ("one", "two")]
    assert first[0] is not None and (first[0] == first[1]).all()
