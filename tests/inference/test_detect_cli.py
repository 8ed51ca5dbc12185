"""`streetwatch detect` end to end, with a model whose detections we choose: a CCTV camera's
dwell rule and schedule, a dashcam drive with GPS and grid cells, photos, and bad input."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from fixed_onnx import anchor, fixed_model

from streetwatch.models.taxonomy import TAXONOMY

START = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
VEHICLE, LOCK, AD = (TAXONOMY.by_key(k).id for k in ("vehicle", "ground_lock", "unauthorized_ad"))
# 160x120 frames letterbox into 64x64 at scale 0.4 with 8 px on top: this anchor is the box
# (60, 70, 100, 90) in the frame, standing at (0.5, 0.75) in normalised coordinates.
CENTRE_ANCHOR = (32.0, 40.0, 16.0, 8.0)


def sw(*args: str | Path) -> Result:
    from streetwatch.service.cli import main

    return CliRunner().invoke(main, ["detect", *[str(a) for a in args]])


def video(path: Path, seconds: float, fps: float = 5.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (160, 120))
    for i in range(int(seconds * fps)):
        writer.write(np.full((120, 160, 3), (i * 3) % 255, np.uint8))
    writer.release()
    return path


def camera(path: Path, **rules: object) -> Path:
    path.write_text(yaml.safe_dump({
        "id": "cam-7", "timezone": "Asia/Shanghai", "location": {"lat": 30.25, "lon": 120.15},
        "zones": [{"name": "hatched", "type": "no_parking",
                   "points": [[0.3, 0.6], [0.7, 0.6], [0.7, 0.9], [0.3, 0.9]]}],
        "rules": {"dwell": [{"class": "vehicle", "zone": "no_parking", "seconds": 4,
                             "stationary": True, "becomes": "illegal_parking"}], **rules},
    }))
    return path


def candidates(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def check_evidence(out: Path, case: dict[str, object], clip: bool = False) -> None:
    evidence = case["evidence"]
    assert isinstance(evidence, list)
    assert sorted(e["kind"] for e in evidence) == ["annotated", *(["clip"] if clip else []),
                                                   "crop", "frame"]
    for item in evidence:
        data = (out / item["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"]


@pytest.fixture
def parked_model(tmp_path: Path) -> Path:
    return fixed_model(tmp_path / "parked.onnx", [anchor(*CENTRE_ANCHOR, VEHICLE, 0.9)])


def test_a_car_standing_in_a_no_parking_zone_becomes_one_case(
        tmp_path: Path, parked_model: Path) -> None:
    clip = video(tmp_path / "cctv.mp4", seconds=16)
    out = tmp_path / "out"
    result = sw(clip, "--out", out, "--model", parked_model, "--camera",
                camera(tmp_path / "cam.yaml"), "--fps", "2", "--start",
                START.strftime("%Y-%m-%dT%H:%M:%S%z"), "--save-video")
    assert result.exit_code == 0, result.output
    assert "1 case candidate(s): illegal_parking 1" in result.output
    (case,) = candidates(out)
    assert case["category"] == "illegal_parking" and case["dispatch_code"] == "0505"
    assert case["source"] == {"kind": "camera", "id": "cam-7"}
    assert case["location"] == {"lat": 30.25, "lon": 120.15}
    assert "vehicle stationary in no_parking" in str(case["rule"])
    box = case["box"]
    assert isinstance(box, list)
    np.testing.assert_allclose(box, [60, 70, 100, 90], atol=0.5)
    first = datetime.fromisoformat(str(case["first_seen"]))
    last = datetime.fromisoformat(str(case["last_seen"]))
    assert first == START and timedelta(seconds=10) <= last - first <= timedelta(seconds=11)
    check_evidence(out, case)
    assert (out / "annotated.mp4").stat().st_size > 0


def test_a_schedule_allows_what_the_rule_would_flag(tmp_path: Path, parked_model: Path) -> None:
    cam = camera(tmp_path / "cam.yaml", allowed=[
        {"class": "illegal_parking", "zone": "hatched", "from": "09:00", "to": "11:00"}])
    out = tmp_path / "out"
    result = sw(video(tmp_path / "cctv.mp4", seconds=16), "--out", out, "--model", parked_model,
                "--camera", cam, "--fps", "2", "--start", START.strftime("%Y-%m-%dT%H:%M:%S%z"))
    assert result.exit_code == 0, result.output
    assert candidates(out) == []


def test_a_dashcam_drive_places_cases_on_the_map_and_the_grid(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "lock.onnx", [anchor(*CENTRE_ANCHOR, LOCK, 0.8)])
    track = tmp_path / "track.csv"
    rows = ["time_utc,lat,lon,speed_mps,heading_deg"]
    for s in range(10):
        time = (START + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
        rows.append(f"{time},{30.25 + s * 1e-4:.6f},120.15,11.1,0")
    track.write_text("\n".join(rows) + "\n")
    grid = tmp_path / "grid.geojson"
    grid.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"grid_id": "330106001001"},
        "geometry": {"type": "Polygon", "coordinates": [[[120.1, 30.2], [120.2, 30.2],
                                                         [120.2, 30.3], [120.1, 30.3],
                                                         [120.1, 30.2]]]}}]}))
    out = tmp_path / "out"
    result = sw(video(tmp_path / "drive.mp4", seconds=6), "--out", out, "--model", model,
                "--gps", track, "--vehicle", "patrol-3", "--grid", grid, "--fps", "2",
                "--clip-seconds", "3")
    assert result.exit_code == 0, result.output
    (case,) = candidates(out)
    assert case["category"] == "ground_lock" and case["grid_cell"] == "330106001001"
    assert case["source"] == {"kind": "vehicle", "id": "patrol-3"}
    location = case["location"]
    assert isinstance(location, dict) and 30.25 <= location["lat"] <= 30.251
    assert case["rule"] == "confirmed in 2 frames"
    check_evidence(out, case, clip=True)  # the drive's last 3 s, as WebM


def geotagged_photo(path: Path, lat: float, lon: float) -> None:
    from PIL import Image, TiffImagePlugin

    def dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
        seconds = round(value * 3600 * 100)
        return (TiffImagePlugin.IFDRational(seconds // 360000, 1),
                TiffImagePlugin.IFDRational(seconds // 6000 % 60, 1),
                TiffImagePlugin.IFDRational(seconds % 6000, 100))

    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", dms(lat), "E", dms(lon)
    Image.new("RGB", (160, 120), (90, 90, 90)).save(path, exif=exif)


def test_photos_merge_by_place_and_only_by_place(tmp_path: Path) -> None:
    model = fixed_model(tmp_path / "ad.onnx", [anchor(*CENTRE_ANCHOR, AD, 0.7)])
    photos = tmp_path / "photos"
    photos.mkdir()
    geotagged_photo(photos / "a.jpg", 30.25, 120.15)
    geotagged_photo(photos / "b.jpg", 30.25005, 120.15)  # 6 m away: the same ad again
    geotagged_photo(photos / "c.jpg", 30.26, 120.15)  # 1 km away: another ad
    cv2.imwrite(str(photos / "d.jpg"), np.full((120, 160, 3), 90, np.uint8))  # no place
    cv2.imwrite(str(photos / "e.jpg"), np.full((120, 160, 3), 90, np.uint8))
    out = tmp_path / "out"
    result = sw(photos, "--out", out, "--model", model)
    assert result.exit_code == 0, result.output
    found = candidates(out)
    assert all(c["category"] == "unauthorized_ad" for c in found)
    assert sorted(len(c["tracks"]) for c in found) == [1, 1, 1, 2]


def test_a_photos_frame_evidence_is_the_file_itself_unless_it_had_to_be_turned(
        tmp_path: Path) -> None:
    """The original bytes are better evidence than a re-encoding (and cost no encoding):
    same sha256 as the photo handed in. A photo its EXIF orientation turns is stored
    upright, as the box and the frame size describe it."""
    from PIL import Image

    model = fixed_model(tmp_path / "ad.onnx", [anchor(*CENTRE_ANCHOR, AD, 0.7)])
    photos = tmp_path / "photos"
    photos.mkdir()
    geotagged_photo(photos / "a.jpg", 30.25, 120.15)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 120 wide and 160 high, shown turned: 160 wide, 120 high
    Image.new("RGB", (120, 160), (90, 90, 90)).save(photos / "b.jpg", exif=exif)
    out = tmp_path / "out"
    result = sw(photos, "--out", out, "--model", model)
    assert result.exit_code == 0, result.output
    assert len(candidates(out)) == 2
    for case in candidates(out):
        check_evidence(out, case)
        (frame,) = (e for e in case["evidence"] if e["kind"] == "frame")
        stored = cv2.imread(str(out / frame["path"]))
        assert stored is not None
        assert (stored.shape[1], stored.shape[0]) == tuple(case["frame_size"]) == (160, 120)
        photo = photos / ("a.jpg" if case["location"] else "b.jpg")
        as_handed_in = hashlib.sha256(photo.read_bytes()).hexdigest() == frame["sha256"]
        assert as_handed_in == (photo.name == "a.jpg"), photo.name


@pytest.mark.parametrize(("imgsz", "box"), [
    ([], [60.0, 70.0, 100.0, 90.0]),
    # at 128 px the 160x120 photo is scaled by 0.8 with no padding: the same input box
    # (24, 36, 40, 44) is (30, 45, 50, 55) in the photo
    (["--imgsz", "128"], [30.0, 45.0, 50.0, 55.0]),
])
def test_imgsz_runs_the_model_at_that_input_size(tmp_path: Path, imgsz: list[str],
                                                 box: list[float]) -> None:
    model = fixed_model(tmp_path / "ad.onnx", [anchor(*CENTRE_ANCHOR, AD, 0.7)])
    photo = tmp_path / "a.jpg"
    geotagged_photo(photo, 30.25, 120.15)
    result = sw(photo, "--out", tmp_path / "out", "--model", model, *imgsz)
    assert result.exit_code == 0, result.output
    assert [c["box"] for c in candidates(tmp_path / "out")] == [pytest.approx(box)]


def test_an_imgsz_off_the_stride_is_refused_by_name(tmp_path: Path, parked_model: Path) -> None:
    result = sw(tmp_path, "--out", tmp_path / "out", "--model", parked_model, "--imgsz", "700")
    assert result.exit_code == 2
    assert "--imgsz': 700 is not a multiple of 32" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem", ["corrupt-image", "empty-video", "not-a-video",
                                     "gps-short", "camera-key", "model-classes", "out-exists"])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path: Path, parked_model: Path,
                                                    problem: str) -> None:
    out = tmp_path / "out"
    source: Path = video(tmp_path / "clip.mp4", seconds=2)
    extra: list[str | Path] = []
    model = parked_model
    if problem == "corrupt-image":
        source = tmp_path / "photo.jpg"
        source.write_bytes(b"\xff\xd8\xff\xe0 truncated")
        expected = "photo.jpg: not a readable image"
    elif problem == "empty-video":
        source = tmp_path / "empty.mp4"
        source.write_bytes(b"")
        expected = "empty.mp4: not a readable video"
    elif problem == "not-a-video":
        source = tmp_path / "notes.mp4"
        source.write_text("these are notes, not frames\n" * 20)
        expected = "notes.mp4: not a readable video"
    elif problem == "gps-short":
        track = tmp_path / "short.csv"
        track.write_text("time_utc,lat,lon\n2026-05-12T02:00:00Z,30.25,120.15\n"
                         "2026-05-12T02:00:01Z,30.25,120.15\n")
        extra = ["--gps", track, "--start", "2026-05-12T02:00:30+0000"]
        expected = "the GPS track covers"
    elif problem == "camera-key":
        cam = tmp_path / "cam.yaml"
        cam.write_text("id: c1\nzones:\n  - {name: z, type: no_parking, points: [[0, 0], [2, 0], "
                       "[1, 1]]}\n")
        extra = ["--camera", cam]
        expected = "key 'zones.0.points'"
    elif problem == "model-classes":
        model = fixed_model(tmp_path / "coco.onnx", [anchor(1, 1, 1, 1, 0, 0.9)],
                            names=["person", "bicycle", "car", "bus", "truck", "dog"])
        expected = "not the streetwatch taxonomy"
    else:
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
        expected = "already exists"
    result = sw(source, "--out", out, "--model", model, *extra)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    if problem == "out-exists":
        assert (out / "mine.txt").read_text() == "keep me"
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(("with_camera", "frames"), [(False, 80), (True, 16)])
def test_footage_is_sampled_by_what_kind_of_camera_took_it(
        tmp_path: Path, parked_model: Path, with_camera: bool, frames: int) -> None:
    """A drive needs 10 frames a second (a poster by the kerb is in view for a quarter of
    one and needs 2 sure sightings); a fixed camera's dwell rules count seconds: 2 will do."""
    clip = video(tmp_path / "clip.mp4", seconds=8, fps=25)
    cam: list[str | Path] = ["--camera", camera(tmp_path / "cam.yaml")] if with_camera else []
    result = sw(clip, "--out", tmp_path / "out", "--model", parked_model, *cam,
                "--start", START.strftime("%Y-%m-%dT%H:%M:%S%z"))
    assert result.exit_code == 0, result.output
    assert f"{frames} frames;" in result.output
