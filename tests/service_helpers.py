"""Test helpers for the service: a settings factory with a promoted model whose detections we
choose, API keys, and job state (importable through pytest's pythonpath)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient
from fixed_onnx import anchor, fixed_model
from live_helpers import wait_until  # re-exported for the service tests

from streetwatch.models.registry import ModelCard, Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.auth import create_key
from streetwatch.service.settings import Settings


def service_settings(tmp_path: Path, class_key: str, *,
                     anchors: list[list[float]] | None = None, **overrides: Any) -> Settings:
    """Settings with a tmp data dir and a registry whose promoted model sees one box of
    ``class_key`` at (60, 70, 100, 90) in every 160x120 frame (or ``anchors``)."""
    registry = Registry(tmp_path / "registry")
    model = fixed_model(tmp_path / "fixed.onnx", anchors or
                        [anchor(32, 40, 16, 8, TAXONOMY.by_key(class_key).id, 0.8)])
    registry.register(ModelCard(name="fixed", version="1", created_at=datetime.now(UTC),
                                taxonomy_version=TAXONOMY.version, classes=TAXONOMY.keys,
                                imgsz=64, artefacts={}), {"onnx": model})
    registry.promote("fixed:1", by="test")
    return Settings.from_env({}, data_dir=tmp_path / "data", registry=registry.root,
                             **overrides)


def keys(client: TestClient, role: str, name: str | None = None) -> dict[str, str]:
    """Headers with a new key of ``role``."""
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {create_key(session, role, name or role)}"}


def job_done(client: TestClient, job_id: str, headers: dict[str, str]) -> bool:
    return bool(client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"]
                in ("done", "failed"))


def upload_photos(client: TestClient, shades: list[int], **form: str) -> str:
    """Upload grey 160x120 JPEGs (one per shade, so each is its own frame) and wait for
    the job to finish; its id."""
    files = []
    for shade in shades:
        ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), shade, np.uint8))
        assert ok
        files.append(("files", (f"p{shade}.jpg", io.BytesIO(data.tobytes()), "image/jpeg")))
    response = client.post("/v1/uploads/photos", headers=keys(client, "ingest"), data=form,
                           files=files)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, job_id, reviewer))
    return job_id


DRIVE_START = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)


def drive_video(path: Path, seconds: float = 4) -> bytes:
    """A 160x120 10 fps MP4 of ``seconds`` (the fixed model sees its box in every frame)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (160, 120))
    for i in range(int(seconds * 10)):
        writer.write(np.full((120, 160, 3), (i * 4) % 256, np.uint8))
    writer.release()
    return path.read_bytes()


def drive_track(seconds: int = 6) -> bytes:
    """A CSV GPS track from DRIVE_START, one fix a second, heading north."""
    rows = ["time_utc,lat,lon"]
    for s in range(seconds):
        time = (DRIVE_START + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
        rows.append(f"{time},{30.25 + s * 1e-4:.6f},120.15")
    return ("\n".join(rows) + "\n").encode()


__all__ = ["DRIVE_START", "anchor", "drive_track", "drive_video", "job_done", "keys",
           "service_settings", "upload_photos", "wait_until"]
