"""Dashcam videos with GPS tracks through the API, and the videos and tracks it refuses."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import job_done, keys, service_settings, wait_until

from streetwatch.service.app import create_app

START = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)


def clip(path: Path, seconds: float = 4) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (160, 120))
    for i in range(int(seconds * 10)):
        writer.write(np.full((120, 160, 3), (i * 4) % 256, np.uint8))
    writer.release()
    return path.read_bytes()


def track_csv(seconds: int = 6) -> bytes:
    rows = ["time_utc,lat,lon"]
    for s in range(seconds):
        time = (START + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
        rows.append(f"{time},{30.25 + s * 1e-4:.6f},120.15")
    return ("\n".join(rows) + "\n").encode()


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
    status, body = post(client, ("drive.mp4", clip(tmp_path / "d.mp4")),
                        ("track.csv", track_csv()), vehicle_id="patrol-2", fps="2")
    assert status == 202
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, str(body["job_id"]), reviewer))
    job = client.get(f"/v1/jobs/{body['job_id']}", headers=reviewer).json()
    assert job["status"] == "done" and job["cases"] == 1
    (case,) = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert case["category"] == "ground_lock" and case["source"]["id"] == "patrol-2"
    assert 30.25 <= case["location"]["lat"] <= 30.2506
    assert case["first_seen"].startswith("2026-05-12T02:00:0")
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
            "long": clip(tmp_path / "long.mp4", seconds=12),
            "good": clip(tmp_path / "good.mp4")}[video]
    got, body = post(client, (f"{video}.mp4", data),
                     ("track.csv", track) if track is not None else None)
    assert got == status and message in str(body["error"]), body
    assert client.get("/healthz").status_code == 200
