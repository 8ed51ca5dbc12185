"""``streetwatch gc``: the footage of long-ended jobs goes unless a newer job holds the same
content; evidence goes only when nothing names it and it is past the grace period."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from service_helpers import keys, service_settings, upload_photos

from streetwatch.service.app import create_app
from streetwatch.service.cli import main
from streetwatch.service.db import Job
from streetwatch.service.settings import Settings


def gc(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(main, ["gc", *args], env={
        "STREETWATCH_DATA_DIR": str(settings.data_dir),
        "STREETWATCH_REGISTRY": str(settings.registry)})
    assert result.exit_code == 0, result.output
    return result.output


def ended_days_ago(client: TestClient, job_id: str, days: float) -> None:
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        job = session.get(Job, job_id)
        job.finished_at = datetime.now(UTC) - timedelta(days=days)
        session.commit()


def age(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return service_settings(tmp_path, "unauthorized_ad")


def test_footage_of_long_ended_jobs_goes_unless_a_newer_job_holds_it(
        settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        shared_old = upload_photos(client, [50])
        alone_old = upload_photos(client, [60])
        shared_new = upload_photos(client, [50])  # the same bytes again: one stored file
        ended_days_ago(client, shared_old, 40)
        ended_days_ago(client, alone_old, 40)
        ended_days_ago(client, shared_new, 2)
        reviewer = keys(client, "reviewer")
        evidence = [item["url"] for case in client.get("/v1/cases", headers=reviewer)
                    .json()["items"] for item in client.get(f"/v1/cases/{case['id']}",
                                                            headers=reviewer).json()["evidence"]]
    stored = sorted(p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file())
    assert len(stored) == 2

    assert "would delete 1 upload(s)" in gc(settings, "--dry-run")
    assert sorted(p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()) \
        == stored
    assert "deleted 1 upload(s), 0 unnamed evidence file(s)" in gc(settings)
    (kept,) = [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file()]
    assert kept.name == hashlib.sha256(kept.read_bytes()).hexdigest()
    with TestClient(create_app(settings)) as client:  # the cases keep all their evidence
        reviewer = keys(client, "reviewer")
        assert evidence and all(client.get(url, headers=reviewer).status_code == 200
                                for url in evidence)


def test_only_unnamed_evidence_past_the_grace_period_goes(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        upload_photos(client, [70])
    folder = settings.data_dir / "evidence"
    named = sorted(folder.glob("*.jpg"))
    for path in named:
        age(path, 10)  # old, but a case names them
    old_orphan, new_orphan = folder / ("a" * 64 + ".jpg"), folder / ("b" * 64 + ".jpg")
    old_clip = folder / ("d" * 64 + ".webm")
    broken_write = folder / ("c" * 64 + ".tmp")
    for path in (old_orphan, new_orphan, old_clip, broken_write):
        path.write_bytes(b"\xff\xd8 not much of a jpeg")
    for path in (old_orphan, old_clip, broken_write):
        age(path, 3)

    output = gc(settings, "--grace-hours", "24")
    assert "2 unnamed evidence file(s), 1 unfinished write(s)" in output
    assert sorted(folder.iterdir()) == sorted([*named, new_orphan])


def test_bad_options_are_refused_by_name(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["gc", "--uploads-days", "-1"],
                                env={"STREETWATCH_DATA_DIR": str(settings.data_dir)})
    assert result.exit_code == 2 and "--uploads-days" in result.output
