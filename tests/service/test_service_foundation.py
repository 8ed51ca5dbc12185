"""The service's foundation: settings from the environment, the migrated database, API keys
with roles, health, readiness and metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from streetwatch.models.registry import ModelCard, Registry
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app
from streetwatch.service.auth import create_key
from streetwatch.service.db import open_database, unsynced_engine
from streetwatch.service.settings import Settings, SettingsError


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"STREETWATCH_DATA_DIR": str(tmp_path),
                                  "STREETWATCH_QUEUE_LIMIT": "5", "HOME": "/root"})
    assert settings.queue_limit == 5
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'streetwatch.db'}"


@pytest.mark.parametrize(("environ", "message"), [
    ({"STREETWATCH_DATABSE_URL": "sqlite://"}, "unknown setting STREETWATCH_DATABSE_URL"),
    ({"STREETWATCH_QUEUE_LIMIT": "many"}, "STREETWATCH_QUEUE_LIMIT='many': Input should be"),
    ({"STREETWATCH_MAX_UPLOAD_BYTES": "0"}, "STREETWATCH_MAX_UPLOAD_BYTES='0': Input should"),
    ({"STREETWATCH_MODEL_KIND": "fp16"}, "STREETWATCH_MODEL_KIND='fp16': Input should be "
                                         "'onnx' or 'int8'"),
    ({"STREETWATCH_MODEL_IMGSZ": "700"}, "STREETWATCH_MODEL_IMGSZ='700': Input should be a "
                                        "multiple of 32"),
    ({"STREETWATCH_LOG_FORMAT": "xml"}, "STREETWATCH_LOG_FORMAT='xml': Input should be "
                                        "'json' or 'text'"),
    ({"STREETWATCH_DISPATCH_URL": "http://x"}, "settings: Value error, dispatch_url needs "
                                               "dispatch_secret"),
])
def test_bad_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_the_database_is_migrated_to_the_latest_schema(tmp_path: Path,
                                                       database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'sw.db'}"
    engine, _ = open_database(url)
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from streetwatch.service.db import MIGRATIONS

    assert {"api_keys", "jobs", "uploads", "cases", "audit", "outbox", "cameras",
            "frames"} <= set(inspect(engine).get_table_names())
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from streetwatch.service.db import Base

    with engine.connect() as connection:  # the migrations build exactly the tables of db.py
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == head
    engine.dispose()
    engine, _ = open_database(url)  # again: nothing to do, nothing breaks
    engine.dispose()


def test_only_a_jobs_own_writes_skip_the_disk_sync(tmp_path: Path,
                                                   database_url: str | None) -> None:
    """Uploads, reviews and dispatch commit synced; the job threads' engine does not wait
    for the disk (a restart redoes a job whose end was lost) and keeps the other settings."""
    engine, _ = open_database(database_url or f"sqlite:///{tmp_path / 'sw.db'}")
    relaxed = unsynced_engine(engine)
    queries: tuple[str, ...]
    expected: dict[Engine, tuple[object, ...]]
    if engine.dialect.name == "sqlite":
        queries = ("PRAGMA synchronous", "PRAGMA journal_mode", "PRAGMA foreign_keys")
        expected = {engine: (2, "wal", 1), relaxed: (1, "wal", 1)}  # 2 FULL, 1 NORMAL
    else:
        queries = ("SHOW synchronous_commit",)
        expected = {engine: ("on",), relaxed: ("off",)}
    for which, values in expected.items():
        with which.connect() as connection:
            assert tuple(connection.execute(text(q)).scalar() for q in queries) == values
    relaxed.dispose()
    engine.dispose()


def test_keys_are_shown_once_and_stored_hashed(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from streetwatch.service.cli import main

    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["keys", "create", "--role", "reviewer", "--name", "li"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("sw_") and len(key) > 40
    assert key.encode() not in (tmp_path / "streetwatch.db").read_bytes()
    bad = CliRunner().invoke(main, ["keys", "create", "--role", "boss"])
    assert bad.exit_code == 2 and "boss" in bad.output


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def client(tmp_path: Path, registry: Registry) -> TestClient:
    settings = Settings.from_env({}, data_dir=tmp_path / "data", registry=registry.root)
    return TestClient(create_app(settings))


def key(client: TestClient, role: str) -> dict[str, str]:
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {create_key(session, role, role)}"}


def test_health_and_readiness(client: TestClient, registry: Registry, tmp_path: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert "none promoted" in " ".join(not_ready.json()["problems"])
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model bytes")
    registry.register(ModelCard(name="m", version="1", created_at=datetime.now(UTC),
                                taxonomy_version=TAXONOMY.version, classes=TAXONOMY.keys,
                                imgsz=64, artefacts={}), {"onnx": model})
    registry.promote("m:1", by="test")
    assert client.get("/readyz").json() == {"status": "ready", "model": "m:1"}
    (registry.root / "m" / "1" / "model.onnx").write_bytes(b"tampered")
    assert "sha256" in " ".join(client.get("/readyz").json()["problems"])


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    body = client.get("/metrics").text
    for name in ("streetwatch_frames_processed_total", "streetwatch_inference_seconds_bucket",
                 "streetwatch_queue_depth", "streetwatch_dispatch_attempts_total"):
        assert name in body


def test_keys_and_roles(client: TestClient) -> None:
    missing = client.get("/v1/whoami")
    assert missing.status_code == 401 and "API key is required" in missing.json()["error"]
    wrong = client.get("/v1/whoami", headers={"Authorization": "Bearer sw_nope"})
    assert wrong.status_code == 401 and "unknown" in wrong.json()["error"]
    for role in ("ingest", "reviewer", "admin"):
        assert client.get("/v1/whoami", headers=key(client, role)).json()["role"] == role
    x_api_key = {"X-API-Key": key(client, "ingest")["Authorization"].removeprefix("Bearer ")}
    assert client.get("/v1/whoami", headers=x_api_key).status_code == 200
