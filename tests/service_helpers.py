"""Test helpers for the service: a settings factory with a promoted model whose detections we
choose, API keys, and job state (importable through pytest's pythonpath)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from fixed_onnx import anchor, fixed_model
from live_helpers import wait_until  # re-exported for the service tests

from streetwatch.models.registry import ModelCard, Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.auth import create_key
from streetwatch.service.settings import Settings


def service_settings(tmp_path: Path, class_key: str, **overrides: Any) -> Settings:
    """Settings with a tmp data dir and a registry whose promoted model sees one box of
    ``class_key`` at (60, 70, 100, 90) in every 160x120 frame."""
    registry = Registry(tmp_path / "registry")
    model = fixed_model(tmp_path / "fixed.onnx",
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


__all__ = ["job_done", "keys", "service_settings", "wait_until"]
