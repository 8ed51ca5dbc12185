"""Structured logs: ``streetwatch serve`` writes one JSON object a line, a line per request
with its request id, and a line per finished job with its counts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from live_helpers import free_port
from service_helpers import service_settings, wait_until

from streetwatch.service.logs import RequestLog, formatter


def test_serve_logs_json_lines_for_requests_and_finished_jobs(tmp_path: Path) -> None:
    settings = service_settings(tmp_path, "ground_lock")
    env = {**os.environ, "STREETWATCH_DATA_DIR": str(settings.data_dir),
           "STREETWATCH_REGISTRY": str(settings.registry), "STREETWATCH_WORKERS": "1"}
    sw = str(Path(sys.executable).with_name("streetwatch"))
    key = subprocess.run([sw, "keys", "create", "--role", "admin"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([sw, "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

                def up() -> bool:
                    try:
                        return client.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                assert wait_until(up, timeout_s=60, poll_s=0.2), log_path.read_text()
                probe = client.get("/readyz", headers={"X-Request-ID": "probe-7"})
                assert probe.headers["x-request-id"] == "probe-7"
                refused = client.get("/v1/cases")  # no key
                assert refused.status_code == 401
                ok, photo = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
                assert ok
                upload = client.post("/v1/uploads/photos", params={"wait": 30},
                                     headers={"Authorization": f"Bearer {key}"},
                                     files={"files": ("p.jpg", photo.tobytes(), "image/jpeg")})
                assert upload.status_code == 202 and upload.json()["status"] == "done"
                job_id = upload.json()["job_id"]
                assert client.get(f"/v1/jobs/{job_id}").status_code == 401
                assert client.get("/no/such/page").status_code == 404
                exposition = client.get("/metrics").text
        finally:
            server.terminate()
            server.wait(timeout=30)

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    requests = [r for r in records if r["logger"] == "streetwatch.http"]
    uploaded = [r for r in requests if r["path"] == "/v1/uploads/photos"]
    assert len(uploaded) == 1 and uploaded[0]["status"] == 202
    assert uploaded[0]["method"] == "POST" and uploaded[0]["ms"] > 0
    assert uploaded[0]["request_id"] == upload.headers["x-request-id"]
    assert [r["status"] for r in requests if r["path"] == "/v1/cases"] == [401]
    assert not [r for r in requests if r["path"] in ("/healthz", "/readyz")]  # DEBUG only
    done = [r for r in records if r.get("job_id") == job_id]
    assert [(r["level"], r["status"], r["frames"], r["candidates"]) for r in done] == [
        ("INFO", "done", 1, 1)]
    assert done[0]["model"] == "fixed:1"
    assert not any(r["logger"] == "uvicorn.access" for r in records)  # ours replaces it
    assert uploaded[0]["route"] == "/v1/uploads/photos"
    # the request histogram: by the route's template, and one series for unmatched paths
    counted = {line.split(" ")[0]: float(line.split(" ")[1]) for line in exposition.splitlines()
               if line.startswith("streetwatch_http_request_seconds_count")}
    assert counted['streetwatch_http_request_seconds_count{method="POST",'
                   'route="/v1/uploads/photos",status="202"}'] == 1
    assert counted['streetwatch_http_request_seconds_count{method="GET",'
                   'route="/v1/jobs/{job_id}",status="401"}'] == 1
    assert counted['streetwatch_http_request_seconds_count{method="GET",'
                   'route="unmatched",status="404"}'] == 1


def test_a_bad_log_format_is_refused_naming_the_setting(tmp_path: Path) -> None:
    env = {**os.environ, "STREETWATCH_DATA_DIR": str(tmp_path),
           "STREETWATCH_LOG_FORMAT": "xml"}
    sw = str(Path(sys.executable).with_name("streetwatch"))
    failed = subprocess.run([sw, "serve", "--port", str(free_port())], env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0
    assert "STREETWATCH_LOG_FORMAT='xml': Input should be 'json' or 'text'" in failed.stderr


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("broken handler")

    @app.get("/fine")
    def fine() -> dict[str, Any]:
        return {"ok": True}

    app.add_middleware(RequestLog)
    return app


def test_a_failing_handler_is_logged_as_500_and_a_bad_request_id_is_replaced(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streetwatch.http")
    with TestClient(_app(), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
        answer = client.get("/fine", headers={"X-Request-ID": "two words\tand a tab"})
    records = {r.path: r for r in caplog.records if r.name == "streetwatch.http"}  # type: ignore[attr-defined]
    assert records["/boom"].status == 500  # type: ignore[attr-defined]
    given = answer.headers["x-request-id"]
    assert given != "two words\tand a tab" and len(given) == 32  # a new id, not the caller's
    assert records["/fine"].request_id == given  # type: ignore[attr-defined]


def test_text_format_is_one_plain_line_and_json_keeps_the_extra_fields() -> None:
    record = logging.LogRecord("streetwatch.service.jobs", logging.INFO, __file__, 1,
                               "job %s done", ("j1",), None)
    record.job_id = "j1"
    assert formatter("text").format(record).endswith("INFO streetwatch.service.jobs: job j1 done")
    parsed = json.loads(formatter("json").format(record))
    assert parsed["message"] == "job j1 done" and parsed["job_id"] == "j1"
    assert parsed["level"] == "INFO" and parsed["time"].endswith("+00:00")


def test_configure_drops_colour_codes_and_alembics_plugin_chatter(
        capsys: pytest.CaptureFixture[str]) -> None:
    from streetwatch.service.logs import configure

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("json")
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]", 7,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
        logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
        lines = capsys.readouterr().err.splitlines()
    finally:
        root.handlers[:], root.level = saved
        logging.captureWarnings(False)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.NOTSET)
    assert [json.loads(line)["message"] for line in lines] == ["Started server process [7]"]
    assert "color_message" not in lines[0]
