"""The fault test with a real process: ``streetwatch serve`` is killed (SIGKILL) in the
middle of a job and started again; the job completes, with its upload intact and no
duplicate case."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
from live_helpers import free_port
from service_helpers import service_settings, wait_until
from sqlalchemy import create_engine, text


def long_clip(path: Path, seconds: int = 30) -> bytes:
    """A 160x120 25 fps clip: hundreds of frames, so the job runs for seconds."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, (160, 120))
    for i in range(seconds * 25):
        writer.write(np.full((120, 160, 3), (i * 3) % 256, np.uint8))
    writer.release()
    return path.read_bytes()


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    port = free_port()
    sw = str(Path(sys.executable).with_name("streetwatch"))
    server = subprocess.Popen([sw, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=90,
                          headers={"Authorization": f"Bearer {env['KEY']}"})

    def up() -> bool:
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert wait_until(up, timeout_s=60, poll_s=0.2), "the service did not start"
        yield server, client
    finally:
        client.close()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def test_a_job_killed_midway_completes_after_a_restart_without_duplicates(
        tmp_path: Path, database_url: str | None) -> None:
    settings = service_settings(tmp_path, "ground_lock", database_url=database_url)
    env = {**os.environ, "STREETWATCH_DATA_DIR": str(settings.data_dir),
           "STREETWATCH_REGISTRY": str(settings.registry), "STREETWATCH_WORKERS": "1"}
    if database_url:
        env["STREETWATCH_DATABASE_URL"] = database_url
    sw = str(Path(sys.executable).with_name("streetwatch"))
    env["KEY"] = subprocess.run([sw, "keys", "create", "--role", "admin"], env=env, check=True,
                                capture_output=True, text=True).stdout.strip()
    video = long_clip(tmp_path / "drive.mp4")

    with serving(env) as (server, client):
        accepted = client.post("/v1/uploads/videos", data={"vehicle_id": "patrol-1",
                                                           "fps": "25"},
                               files={"video": ("drive.mp4", video, "video/mp4")})
        assert accepted.status_code == 202, accepted.text
        job_url = f"/v1/jobs/{accepted.json()['job_id']}"

        def midway() -> bool:
            job = client.get(job_url).json()
            return bool(job["status"] == "running" and 0 < job["progress"] < 0.5)

        assert wait_until(midway, timeout_s=60, poll_s=0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    database = create_engine(settings.db_url)
    try:  # what the kill left: the job running, its cases not yet stored
        with database.connect() as connection:
            status = connection.execute(text("SELECT status FROM jobs")).scalar_one()
            cases = connection.execute(text("SELECT count(*) FROM cases")).scalar_one()
    finally:
        database.dispose()
    assert (status, cases) == ("running", 0)

    with serving(env) as (_server, client):
        started = time.monotonic()
        while (job := client.get(job_url, params={"wait": 60}).json())["status"] in (
                "queued", "running"):
            assert time.monotonic() - started < 180
        assert job["status"] == "done" and job["cases"] == 1, job
        listed = client.get("/v1/cases").json()
        assert listed["total"] == 1  # the rerun's case ids are the first run's: no duplicate
    stored = settings.data_dir / "uploads"
    kept = [p for p in stored.rglob("*") if p.is_file()]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in kept] == [
        hashlib.sha256(video).hexdigest()]  # the upload is whole
