"""``STREETWATCH_MODEL_KIND`` chooses which artefact of the promoted model the detectors run:
the FP32 ONNX by default, or its INT8 copy. Here the two artefacts are fixed models that see
different classes, so each case shows which file found it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fixed_onnx import anchor, fixed_model
from service_helpers import keys, upload_photos

from streetwatch.inference.detector import Detector
from streetwatch.models.registry import ModelCard, Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app
from streetwatch.service.settings import Settings

SEES = {"onnx": "ground_lock", "int8": "street_vending"}


def registry_with(tmp_path: Path, kinds: tuple[str, ...],
                  input_shape: tuple[int | str, ...] = ("n", 3, "h", "w")) -> Registry:
    """A registry whose promoted model ``fixed:1`` has these artefacts, each seeing one box
    of its class in ``SEES`` at (60, 70, 100, 90) of a 160x120 photo."""
    registry = Registry(tmp_path / "registry")
    files = {kind: fixed_model(tmp_path / f"{kind}.onnx", [
        anchor(32, 40, 16, 8, TAXONOMY.by_key(SEES[kind]).id, 0.8)], input_shape=input_shape)
        for kind in kinds}
    registry.register(ModelCard(name="fixed", version="1", created_at=datetime.now(UTC),
                                taxonomy_version=TAXONOMY.version, classes=TAXONOMY.keys,
                                imgsz=64, artefacts={}), files)
    registry.promote("fixed:1", by="test")
    return registry


@pytest.mark.parametrize("kind", ["onnx", "int8"])
def test_the_jobs_run_the_artefact_the_setting_names(tmp_path: Path, kind: str) -> None:
    registry = registry_with(tmp_path, ("onnx", "int8"))
    environ = {"STREETWATCH_MODEL_KIND": kind} if kind == "int8" else {}  # onnx: the default
    settings = Settings.from_env(environ, data_dir=tmp_path / "data", registry=registry.root)
    artefact = registry.card("fixed:1").artefacts[kind]
    with TestClient(create_app(settings)) as client:
        reviewer = keys(client, "reviewer")
        served = client.get("/v1/model", headers=reviewer).json()
        assert (served["artefact"], served["sha256"]) == (kind, artefact.sha256)
        job_id = upload_photos(client, [90])
        assert client.get(f"/v1/jobs/{job_id}", headers=reviewer).json()["status"] == "done"
        cases = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert [(c["category"], c["model"]["sha256"]) for c in cases] == [
        (SEES[kind], artefact.sha256)]


def test_a_promoted_model_without_that_artefact_is_not_ready_and_its_jobs_say_why(
        tmp_path: Path) -> None:
    registry = registry_with(tmp_path, ("onnx",))
    settings = Settings.from_env({"STREETWATCH_MODEL_KIND": "int8"},
                                 data_dir=tmp_path / "data", registry=registry.root)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == [
            "model: fixed:1: has no int8 artefact (it has: onnx)"]
        job_id = upload_photos(client, [90])
        job = client.get(f"/v1/jobs/{job_id}", headers=keys(client, "reviewer")).json()
    assert job["status"] == "failed"
    assert "has no int8 artefact" in job["error"]


@pytest.mark.parametrize(("environ", "imgsz", "box"), [
    ({}, 64, [60.0, 70.0, 100.0, 90.0]),
    # at 128 px the 160x120 photo is scaled by 0.8 (not 0.4) and padded by nothing: the
    # same input box (24, 36, 40, 44) is (30, 45, 50, 55) in the photo
    ({"STREETWATCH_MODEL_IMGSZ": "128"}, 128, [30.0, 45.0, 50.0, 55.0]),
])
def test_the_jobs_run_the_model_at_the_input_size_the_setting_names(
        tmp_path: Path, environ: dict[str, str], imgsz: int, box: list[float]) -> None:
    registry = registry_with(tmp_path, ("onnx",))
    settings = Settings.from_env(environ, data_dir=tmp_path / "data", registry=registry.root)
    with TestClient(create_app(settings)) as client:
        reviewer = keys(client, "reviewer")
        assert client.get("/v1/model", headers=reviewer).json()["imgsz"] == imgsz
        upload_photos(client, [90])
        cases = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert [c["box"] for c in cases] == [pytest.approx(box)]


def test_a_model_exported_at_a_fixed_size_is_not_ready_at_another_and_its_jobs_say_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_with(tmp_path, ("onnx",), input_shape=(1, 3, 64, 64))
    settings = Settings.from_env({"STREETWATCH_MODEL_IMGSZ": "128"},
                                 data_dir=tmp_path / "data", registry=registry.root)
    refusal = "its input is fixed at 64x64, so it cannot run at 128 px"
    opened: list[Path] = []
    real_open = Detector.open

    def counted_open(path: Path, *args: Any, **kwargs: Any) -> Detector:
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Detector, "open", counted_open)
    with TestClient(create_app(settings)) as client:
        job_id = upload_photos(client, [90])
        job = client.get(f"/v1/jobs/{job_id}", headers=keys(client, "reviewer")).json()
        ready = client.get("/readyz")  # the job thread has tried to load it by now
        time.sleep(1.0)  # five polls: the same version is not opened again at each
    assert len(opened) == settings.workers  # once by each job thread
    assert job["status"] == "failed"
    assert refusal in job["error"]
    assert ready.status_code == 503
    (problem,) = ready.json()["problems"]
    assert problem.startswith("model: ") and refusal in problem
    # at its own size the same model serves (the 160x120 photo padded to the square)
    settings = Settings.from_env({}, data_dir=tmp_path / "data2", registry=registry.root)
    with TestClient(create_app(settings)) as client:
        upload_photos(client, [90])
        cases = client.get("/v1/cases", headers=keys(client, "reviewer")).json()["items"]
        assert client.get("/readyz").status_code == 200
    assert [c["box"] for c in cases] == [pytest.approx([60.0, 70.0, 100.0, 90.0])]
