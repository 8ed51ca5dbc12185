"""Long polling of a job: ``GET /v1/jobs/{id}?wait=S`` answers when the job ends, or after S
seconds with it still going, instead of a client polling in a loop."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import keys, service_settings

from streetwatch.service.app import create_app
from streetwatch.service.db import Job


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(tmp_path, "unauthorized_ad"))) as client:
        yield client


def running_job(client: TestClient) -> str:
    """A job row the worker will not pick up (it only claims queued ones)."""
    job_id = str(uuid.uuid4())
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        session.add(Job(id=job_id, kind="photos", status="running", source_kind="upload",
                        source_id="test"))
        session.commit()
    return job_id


def end(client: TestClient, job_id: str, *, tell: bool) -> None:
    state = client.app.state.sw  # type: ignore[attr-defined]
    with state.sessions() as session:
        job = session.get(Job, job_id)
        job.status = "done"
        session.commit()
    if tell:
        state.job_events.ended(job_id)


def test_one_request_waits_for_an_upload_to_be_processed(client: TestClient) -> None:
    _, data = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    accepted = client.post("/v1/uploads/photos", headers=keys(client, "ingest"),
                           files=[("files", ("a.jpg", io.BytesIO(data.tobytes()), "image/jpeg"))])
    job = client.get(f"/v1/jobs/{accepted.json()['job_id']}", params={"wait": 30},
                     headers=keys(client, "reviewer")).json()
    assert job["status"] == "done" and job["cases"] == 1


def test_an_upload_may_wait_for_its_own_job(client: TestClient) -> None:
    """``POST /v1/uploads/photos?wait=S``: stored, processed and answered in one request."""
    _, data = cv2.imencode(".jpg", np.full((120, 160, 3), 95, np.uint8))
    accepted = client.post("/v1/uploads/photos", params={"wait": 30},
                           headers=keys(client, "ingest"),
                           files=[("files", ("a.jpg", io.BytesIO(data.tobytes()), "image/jpeg"))])
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "done" and body["photos"] == 1
    assert body["job"]["id"] == body["job_id"] and body["job"]["cases"] == 1
    assert client.get(f"/v1/jobs/{body['job_id']}", headers=keys(client, "reviewer")).json() \
        == body["job"]


def test_an_upload_with_a_bad_wait_is_refused_and_nothing_is_stored(
        client: TestClient) -> None:
    _, data = cv2.imencode(".jpg", np.full((120, 160, 3), 96, np.uint8))
    refused = client.post("/v1/uploads/photos", params={"wait": "61"},
                          headers=keys(client, "ingest"),
                          files=[("files", ("a.jpg", io.BytesIO(data.tobytes()), "image/jpeg"))])
    assert refused.status_code == 422 and "wait" in refused.json()["error"]
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        assert session.query(Job).count() == 0


def waited_through_an_end(client: TestClient, *, tell: bool) -> dict[str, Any]:
    """A 30 s wait on a running job that ends 0.3 s in (the worker telling or not)."""
    job_id = running_job(client)
    timer = threading.Timer(0.3, end, args=(client, job_id), kwargs={"tell": tell})
    timer.start()
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 30},
                                     headers=keys(client, "reviewer")).json()
    timer.join()
    return job


def test_the_answer_comes_when_the_worker_tells_the_job_ended(client: TestClient) -> None:
    client.app.state.sw.job_recheck_s = 120  # type: ignore[attr-defined]  # only told wakes it
    job = waited_through_an_end(client, tell=True)
    assert job["status"] == "done"  # untold, it would have answered "running" after 30 s


def test_an_end_nobody_told_is_found_by_looking_again(client: TestClient) -> None:
    """Another process may run the job: the wait re-reads the database every second."""
    assert waited_through_an_end(client, tell=False)["status"] == "done"


def test_a_job_still_going_is_answered_after_the_wait(client: TestClient) -> None:
    job_id = running_job(client)
    started = time.monotonic()
    job = client.get(f"/v1/jobs/{job_id}", params={"wait": 0.5},
                     headers=keys(client, "reviewer")).json()
    assert job["status"] == "running" and 0.5 <= time.monotonic() - started < 5
    assert not client.app.state.sw.job_events._waiters  # type: ignore[attr-defined]


@pytest.mark.parametrize(("wait", "status"), [("-1", 422), ("61", 422), ("soon", 422)])
def test_a_bad_wait_is_refused_by_name(client: TestClient, wait: str, status: int) -> None:
    response = client.get(f"/v1/jobs/{running_job(client)}", params={"wait": wait},
                          headers=keys(client, "reviewer"))
    assert response.status_code == status and "wait" in response.json()["error"]


def test_waiting_on_an_unknown_job_is_a_404_at_once(client: TestClient) -> None:
    started = time.monotonic()
    response = client.get("/v1/jobs/nope", params={"wait": 30},
                          headers=keys(client, "reviewer"))
    assert response.status_code == 404 and time.monotonic() - started < 5


def frames_processed(client: TestClient) -> float:
    metrics = client.app.state.sw.metrics  # type: ignore[attr-defined]
    return float(metrics.frames._value.get())


def test_jobs_run_in_parallel_each_exactly_once_across_threads_and_processes(
        tmp_path: Path, database_url: str | None) -> None:
    """Two apps on one database (as two processes would be), two job threads each: twelve
    queued jobs are each claimed and run once (which app runs how many varies)."""
    settings = service_settings(tmp_path, "unauthorized_ad", workers=2,
                                database_url=database_url)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        ingest, reviewer = keys(one, "ingest"), keys(one, "reviewer")
        jobs = []
        for shade in range(12):
            _, data = cv2.imencode(".jpg", np.full((120, 160, 3), 40 + shade * 10, np.uint8))
            jobs.append(one.post("/v1/uploads/photos", headers=ingest, files=[
                ("files", ("p.jpg", io.BytesIO(data.tobytes()), "image/jpeg"))]).json()["job_id"])
            two.app.state.sw.wake_worker()  # type: ignore[attr-defined]
        done = [one.get(f"/v1/jobs/{job}", params={"wait": 30}, headers=reviewer).json()
                for job in jobs]
        assert [job["status"] for job in done] == ["done"] * 12
        assert [job["cases"] for job in done] == [1] * 12
        assert frames_processed(one) + frames_processed(two) == 12
