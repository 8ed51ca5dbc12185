"""Dashcam videos with GPS tracks through the API, and the videos and tracks it refuses."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient
from service_helpers import (
    drive_track,
    drive_video,
    job_done,
    keys,
    service_settings,
    wait_until,
)

from streetwatch.service.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, "ground_lock", max_video_seconds=10)
    with TestClient(create_app(settings)) as client:
        yield client


def post(client: TestClient, video: tuple[str, bytes], track: tuple[str, bytes] | None = None,
         **form: str) -> tuple[int, dict[str, object]]:
    files = [("video", (video[0], io.BytesIO(video[1]), "video/mp4"))]
    if track is not None:
        files.append(("track", (track[0], io.BytesIO(track[1]), "text/csv")))
    response = client.post("/v1/uploads/videos", headers=keys(client, "ingest"), files=files,
                           data=form)
    return response.status_code, response.json()


def test_a_drive_becomes_a_placed_case(client: TestClient, tmp_path: Path) -> None:
    status, body = post(client, ("drive.mp4", drive_video(tmp_path / "d.mp4")),
                        ("track.csv", drive_track()), vehicle_id="patrol-2", fps="2")
    assert status == 202
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, str(body["job_id"]), reviewer))
    job = client.get(f"/v1/jobs/{body['job_id']}", headers=reviewer).json()
    assert job["status"] == "done" and job["cases"] == 1
    (case,) = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert case["category"] == "ground_lock" and case["source"]["id"] == "patrol-2"
    assert 30.25 <= case["location"]["lat"] <= 30.2506
    assert case["places"] == [case["location"]]  # each sighting merged into it, its own first
    assert case["first_seen"].startswith("2026-05-12T02:00:0")
    clip_url = next(e["url"] for e in case["evidence"] if e["kind"] == "clip")
    served = client.get(clip_url, headers=reviewer)  # the seconds before: a WebM clip
    assert served.status_code == 200 and served.headers["content-type"] == "video/webm"
    (tmp_path / "clip.webm").write_bytes(served.content)
    capture, frames = cv2.VideoCapture(str(tmp_path / "clip.webm")), 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames >= 4  # 2 fps for the whole 4 s drive (the clip may span 6 s)
    metrics = client.get("/metrics").text
    assert "streetwatch_frames_processed_total 8.0" in metrics
    assert "streetwatch_inference_seconds_count 8.0" in metrics


@pytest.mark.parametrize(("video", "track", "status", "message"), [
    ("broken", None, 415, "broken.mp4: not a readable video"),
    ("long", None, 413, "longer than the limit of 10 s"),
    ("good", b"time_utc,lat,lon\n2026-05-12T02:00:00Z,30.2,120.1\n2026-05-12T02:00:01Z,abc,1\n",
     422, "track.csv: track:3: lat, lon"),
])
def test_bad_videos_and_tracks_are_refused(client: TestClient, tmp_path: Path, video: str,
                                           track: bytes | None, status: int,
                                           message: str) -> None:
    data = {"broken": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500,
            "long": drive_video(tmp_path / "long.mp4", seconds=12),
            "good": drive_video(tmp_path / "good.mp4")}[video]
    got, body = post(client, (f"{video}.mp4", data),
                     ("track.csv", track) if track is not None else None)
    assert got == status and message in str(body["error"]), body
    assert client.get("/healthz").status_code == 200
