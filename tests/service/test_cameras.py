"""Cameras over the API: zones and rules checked like a YAML file, and a stream worker that
turns a live stream into cases as they fire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_helpers import served_clip
from service_helpers import anchor, keys, service_settings, wait_until

from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app

ZONE = {"name": "hatched", "type": "no_parking",
        "points": [[0.3, 0.6], [0.7, 0.6], [0.7, 0.9], [0.3, 0.9]]}


@pytest.fixture
def stream_url(tmp_path: Path) -> Iterator[str]:
    """A 30-frame clip served over HTTP on loopback: a live stream."""
    with served_clip(tmp_path, frames=30) as url:
        yield url


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(tmp_path, "ground_lock"))) as client:
        yield client


@pytest.mark.timeout(60)
def test_a_running_camera_stores_cases_as_they_fire(client: TestClient,
                                                    stream_url: str) -> None:
    admin = keys(client, "admin")
    config = {"location": {"lat": 30.25, "lon": 120.15}, "zones": [ZONE],
              "rules": {"dwell": [{"class": "ground_lock", "seconds": 0}]}}
    created = client.post("/v1/cameras", headers=admin,
                          json={"id": "cam-1", "url": stream_url, "fps": 5, "config": config})
    assert created.status_code == 201 and created.json()["worker"] == "stopped"
    assert client.post("/v1/cameras/cam-1/start", headers=admin).json()["worker"] == "running"

    def stored() -> bool:
        return bool(client.get("/v1/cases", headers=admin).json()["total"] >= 1)

    assert wait_until(stored)
    (case, *_) = client.get("/v1/cases", headers=admin).json()["items"]
    assert case["source"] == {"kind": "camera", "id": "cam-1"}
    assert case["location"] == {"lat": 30.25, "lon": 120.15}
    stopped = client.post("/v1/cameras/cam-1/stop", headers=admin).json()
    assert stopped["running"] is False and stopped["worker"] == "stopped"
    assert client.delete("/v1/cameras/cam-1", headers=admin).status_code == 204
    assert client.get("/v1/cameras/cam-1", headers=admin).status_code == 404


@pytest.mark.timeout(90)
def test_a_restarted_camera_sees_its_stored_case_again_not_a_new_one(
        client: TestClient, stream_url: str) -> None:
    """The worker's memory of open cases goes with it when a camera is stopped (or the
    service restarts); the ground lock still there joins its stored case."""
    admin = keys(client, "admin")
    config = {"location": {"lat": 30.25, "lon": 120.15}, "zones": [ZONE],
              "rules": {"dwell": [{"class": "ground_lock", "seconds": 0}]}}
    client.post("/v1/cameras", headers=admin,
                json={"id": "cam-2", "url": stream_url, "fps": 5, "config": config})

    def trail() -> list[dict[str, object]]:
        items = client.get("/v1/cases", headers=admin).json()["items"]
        return [] if not items else list(
            client.get(f"/v1/cases/{items[0]['id']}/audit", headers=admin).json())

    client.post("/v1/cameras/cam-2/start", headers=admin)
    assert wait_until(lambda: client.get("/v1/cases", headers=admin).json()["total"] == 1)
    client.post("/v1/cameras/cam-2/stop", headers=admin)
    client.post("/v1/cameras/cam-2/start", headers=admin)
    assert wait_until(lambda: any(e["why"] == "the same problem seen again" for e in trail()),
                      timeout_s=60)
    client.post("/v1/cameras/cam-2/stop", headers=admin)
    assert client.get("/v1/cases", headers=admin).json()["total"] == 1


def test_camera_configs_are_checked(client: TestClient) -> None:
    admin = keys(client, "admin")
    bad_zone = {**ZONE, "points": [[0, 0], [2, 0], [1, 1]]}
    refused = client.post("/v1/cameras", headers=admin,
                          json={"id": "c2", "config": {"zones": [bad_zone]}})
    assert refused.status_code == 422 and "key 'zones.0.points'" in refused.json()["error"]
    assert client.post("/v1/cameras", headers=admin, json={"id": "c2"}).status_code == 201
    assert client.post("/v1/cameras", headers=admin, json={"id": "c2"}).status_code == 409
    no_url = client.post("/v1/cameras/c2/start", headers=admin)
    assert no_url.status_code == 422 and "no stream url" in no_url.json()["error"]
    changed = client.put("/v1/cameras/c2", headers=admin,
                         json={"fps": 2, "config": {"timezone": "Asia/Urumqi"}}).json()
    assert changed["config"]["timezone"] == "Asia/Urumqi" and changed["fps"] == 2
    assert client.post("/v1/cameras", headers=keys(client, "reviewer"),
                       json={"id": "c3"}).status_code == 403


@pytest.mark.timeout(60)
def test_a_camera_samples_frames_without_candidates_for_misses(tmp_path: Path,
                                                                stream_url: str) -> None:
    settings = service_settings(tmp_path, "vehicle", sample_rate=1.0)  # never a case
    with TestClient(create_app(settings)) as client:
        admin = keys(client, "admin")
        client.post("/v1/cameras", headers=admin,
                    json={"id": "cam-2", "url": stream_url, "fps": 5, "config": {}})
        client.post("/v1/cameras/cam-2/start", headers=admin)

        def sampled() -> int:
            return int(client.get("/v1/review/samples", headers=admin).json()["total"])

        assert wait_until(lambda: sampled() >= 1)
        # more may be stored by the time of this call (each of the clip's frames differs)
        frame, *_ = client.get("/v1/review/samples", headers=admin).json()["items"]
        assert frame["source"] == {"kind": "camera", "id": "cam-2"} and frame["job_id"] is None
        assert frame["model"]["version"] == "1"
        client.post("/v1/cameras/cam-2/stop", headers=admin)


@pytest.mark.timeout(60)
def test_a_camera_uses_the_service_case_confidence(tmp_path: Path, stream_url: str) -> None:
    """A sighting at 0.35 is a case when STREETWATCH_CASE_CONFIDENCE is 0.3, on a camera
    as on an upload (cameras once kept the rules' own default of 0.4)."""
    lock = TAXONOMY.by_key("ground_lock").id
    settings = service_settings(tmp_path, "ground_lock", case_confidence=0.3,
                                anchors=[anchor(32, 40, 16, 8, lock, 0.35)])
    with TestClient(create_app(settings)) as client:
        admin = keys(client, "admin")
        client.post("/v1/cameras", headers=admin, json={
            "id": "cam-3", "url": stream_url, "fps": 5,
            "config": {"rules": {"dwell": [{"class": "ground_lock", "seconds": 0}]}}})
        client.post("/v1/cameras/cam-3/start", headers=admin)
        assert wait_until(lambda: client.get("/v1/cases", headers=admin).json()["total"] >= 1)
        client.post("/v1/cameras/cam-3/stop", headers=admin)


def test_a_camera_keeps_only_the_cases_a_firing_could_still_merge_into(
        tmp_path: Path) -> None:
    """A camera runs for weeks; each case is stored as it fires, and the worker's memory
    of cases reaches back two merge windows, not to the start."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from streetwatch.inference.cases import EvidenceStore, ModelRef, Source
    from streetwatch.inference.rules import Firing
    from streetwatch.inference.tracking import Observation, Track
    from streetwatch.inference.types import Frame
    from streetwatch.service.streams import _StoringBuilder

    stored: list[str] = []
    builder = _StoringBuilder(lambda cases, update=False: stored.extend(c.id for c in cases),
                              evidence=EvidenceStore(tmp_path), merge_window_s=60,
                              model=ModelRef(name="m", version="1", sha256=None),
                              source=Source(kind="camera", id="cam-1"))
    start = datetime(2026, 5, 12, tzinfo=UTC)
    image = np.zeros((120, 160, 3), np.uint8)
    for k in range(30):  # a lock in a new place every 10 minutes
        at = start + timedelta(minutes=10 * k)
        box = np.array([5 * k, 10, 5 * k + 4, 14], np.float32)
        track = Track(k + 1, [Observation(at, box, 0.9, TAXONOMY.by_key("ground_lock").id)])
        builder.add(Firing(track, "ground_lock", "test", at), Frame("cam-1", k, at, image))
    assert len(stored) == 30 and len(set(stored)) == 30
    assert len(builder.candidates) <= 1
