"""The demo's last act: start the service on the shipped model with an embedded SQLite
database, feed it the generated dashcam drive (with its GPS track) and a few generated
street photos, wait for the jobs, and show the case candidates it found.

    .venv/bin/python scripts/demo_service.py demo-out

Leaves the database in OUT/service (restart with the command it prints). A re-run starts
from an empty one: feeding the same footage to a database that has its cases would only
show each case twice.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out").resolve()
    data = out / "service"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "STREETWATCH_DATA_DIR": str(data)}
    sw = str(Path(sys.executable).with_name("streetwatch"))
    key = subprocess.run([sw, "keys", "create", "--role", "admin", "--name", "demo"], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "serve.log").open("w")  # the service's log: one JSON object a line
    server = subprocess.Popen([sw, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for _ in range(100):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            print("service ready:", client.get("/readyz").json())
            drive = out / "drive"
            with (drive / "video.mp4").open("rb") as video, \
                    (drive / "track.gpx").open("rb") as track:
                jobs = [client.post("/v1/uploads/videos", data={"vehicle_id": "patrol-demo",
                                                                "fps": "5"},
                                    files={"video": ("drive.mp4", video, "video/mp4"),
                                           "track": ("track.gpx", track, "application/gpx")}
                                    ).json()["job_id"]]
            photos = sorted((out / "synth-ds" / "images" / "train").glob("*.jpg"))[:8]
            files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
            jobs.append(client.post("/v1/uploads/photos", files=files,
                                    data={"lat": "30.2458", "lon": "120.1459"}).json()["job_id"])
            for job_id in jobs:
                while (job := client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
                       )["status"] in ("queued", "running"):
                    pass  # each request waits up to 30 s for the job to end
                print(f"job {job['kind']}: {job['status']}, {job['cases']} case candidate(s)"
                      + (f" ({job['error']})" if job["error"] else ""))
            cases = client.get("/v1/cases", params={"limit": 10}).json()
            shown = cases["items"]
            print(f"{cases['total']} case candidate(s) waiting for review"
                  + (f", the first {len(shown)}:" if cases["total"] > len(shown) else ":"))
            for case in shown:
                place = case["location"]
                where = f"{place['lat']:.5f}, {place['lon']:.5f}" if place else "no place"
                print(f"  {case['category']:<16} {case['confidence']:.2f}  {where}  "
                      f"{case['rule']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    print(f"\nThe database is in {data}, the service's log in {data / 'serve.log'}. "
          "Serve it again with:\n"
          f"  STREETWATCH_DATA_DIR={data} .venv/bin/streetwatch serve\n"
          "then review on http://127.0.0.1:8000/review (the API: /docs), with this key:\n"
          f"  {key}")


if __name__ == "__main__":
    main()
