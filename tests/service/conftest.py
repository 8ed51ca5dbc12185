"""The service's databases: tests that take ``database_url`` run once on the embedded SQLite
and once on a real PostgreSQL server (pgserver's bundled binaries, started once per run;
each test gets a database of its own)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL server for this test run."""
    pgserver = pytest.importorskip(
        "pgserver", reason="PostgreSQL tests need pgserver (the dev extra installs it)")
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR on CI machines
        warnings.simplefilter("ignore")
        server = pgserver.get_server(Path(tmp_path_factory.mktemp("postgres")),
                                     cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the default SQLite under the data directory, or a fresh PostgreSQL
    database's SQLAlchemy URL."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("postgres")
    name = f"test_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name};")
    socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}"
