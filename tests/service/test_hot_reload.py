"""A newly promoted model serves the next job without a restart; a running job finishes on
the model it started with; camera streams switch between batches; rollback is one command."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from fixed_onnx import anchor, fixed_model
from service_helpers import job_done, keys, service_settings, wait_until

from streetwatch.inference.cases import CaseBuilder, EvidenceStore, ModelRef, Source
from streetwatch.inference.pipeline import run
from streetwatch.models.registry import ModelCard, Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app
from streetwatch.service.cli import main
from streetwatch.service.jobs import Services, Worker
from streetwatch.service.settings import Settings
from streetwatch.service.streams import FollowPromoted


def register_second(tmp_path: Path, registry: Registry) -> None:
    """fixed:2 sees a vending stall where fixed:1 sees a ground lock."""
    model = fixed_model(tmp_path / "second.onnx",
                        [anchor(32, 40, 16, 8, TAXONOMY.by_key("street_vending").id, 0.8)])
    registry.register(ModelCard(name="fixed", version="2", created_at=datetime.now(UTC),
                                taxonomy_version=TAXONOMY.version, classes=TAXONOMY.keys,
                                imgsz=64, artefacts={}, parent="fixed:1"), {"onnx": model})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = service_settings(tmp_path, "ground_lock")
    assert settings.registry is not None
    register_second(tmp_path, Registry(settings.registry))
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def upload(client: TestClient, shade: int) -> dict[str, Any]:
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), shade, np.uint8))
    assert ok
    response = client.post("/v1/uploads/photos", headers=keys(client, "ingest"),
                           files=[("files", ("p.jpg", data.tobytes(), "image/jpeg"))])
    assert response.status_code == 202
    return dict(response.json())


def served_by(client: TestClient, job_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The job's model and its cases' (category, model version)."""
    reviewer = keys(client, "reviewer")
    assert wait_until(lambda: job_done(client, job_id, reviewer))
    job = client.get(f"/v1/jobs/{job_id}", headers=reviewer).json()
    cases = client.get("/v1/cases", headers=reviewer, params={"limit": 200}).json()["items"]
    return job["model"], [(c["category"], c["model"]["version"]) for c in cases
                          if c["job_id"] == job_id]


def test_promotion_and_rollback_reach_the_next_job(client: TestClient,
                                                   settings: Settings) -> None:
    assert settings.registry is not None
    registry = Registry(settings.registry)
    reviewer = keys(client, "reviewer")
    assert client.get("/v1/model", headers=reviewer).json()["model"] == "fixed:1"
    assert served_by(client, upload(client, 10)["job_id"]) == (
        "fixed:1", [("ground_lock", "1")])

    registry.promote("fixed:2", by="test", force=True)  # as `streetwatch models promote` does
    assert client.get("/v1/model", headers=reviewer).json()["parent"] == "fixed:1"
    assert served_by(client, upload(client, 20)["job_id"]) == (
        "fixed:2", [("street_vending", "2")])

    result = CliRunner().invoke(main, ["models", "rollback", "--registry", str(registry.root)])
    assert result.exit_code == 0, result.output
    assert served_by(client, upload(client, 30)["job_id"]) == (
        "fixed:1", [("ground_lock", "1")])


def test_a_running_job_finishes_on_the_model_it_started_with(
        client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.registry is not None
    started, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:  # the job pauses inside, until released
        started.set()
        assert release.wait(20)
        return run(*args, **kwargs)

    monkeypatch.setattr("streetwatch.service.jobs.run", held)
    first = upload(client, 40)["job_id"]
    assert started.wait(20)
    Registry(settings.registry).promote("fixed:2", by="test", force=True)
    second = upload(client, 50)["job_id"]
    release.set()
    assert served_by(client, first) == ("fixed:1", [("ground_lock", "1")])
    assert served_by(client, second) == ("fixed:2", [("street_vending", "2")])


def following(settings: Settings,
              tmp_path: Path) -> tuple[Registry, CaseBuilder, FollowPromoted]:
    """A camera's model follower (checking at every batch) and its case builder."""
    assert settings.registry is not None
    registry = Registry(settings.registry)
    worker = Worker(Services(sessions=None, store=None, evidence=tmp_path,  # type: ignore[arg-type]
                             registry=registry))
    builder = CaseBuilder(EvidenceStore(tmp_path / "evidence"),
                          ModelRef(name="fixed", version="1", sha256="x"),
                          Source(kind="camera", id="cam"))
    return registry, builder, FollowPromoted(worker, builder, check_s=0)


def test_a_camera_stream_switches_model_between_batches(settings: Settings,
                                                        tmp_path: Path) -> None:
    registry, builder, follow = following(settings, tmp_path)
    image = np.full((120, 160, 3), 90, np.uint8)
    assert TAXONOMY.by_id(int(follow([image])[0].class_id[0])).key == "ground_lock"
    registry.promote("fixed:2", by="test", force=True)
    assert TAXONOMY.by_id(int(follow([image])[0].class_id[0])).key == "street_vending"
    assert builder.model.version == "2" and follow.ref == "fixed:2"


def test_a_stream_keeps_its_model_when_the_promoted_one_cannot_load(
        settings: Settings, tmp_path: Path) -> None:
    registry, builder, follow = following(settings, tmp_path)
    registry.promote("fixed:2", by="test", force=True)
    card = registry.card("fixed:2")
    registry.artefact_path(card, "onnx").write_bytes(b"not a model any more")
    image = np.full((120, 160, 3), 90, np.uint8)
    assert TAXONOMY.by_id(int(follow([image])[0].class_id[0])).key == "ground_lock"
    assert follow.ref == "fixed:1" and builder.model.version == "1"
