"""Review and dispatch end to end: upload -> job -> case -> confirm -> outbox -> a local fake
dispatch system, which receives each confirmed case exactly once, signed, even when it was
down for a while; its signed callbacks move cases on."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from live_helpers import free_port
from service_helpers import job_done, keys, service_settings, wait_until

from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app

SECRET = "s3cret-for-tests"
LOCK = TAXONOMY.by_key("ground_lock").id


class FakeDispatch:
    """A dispatch system on loopback: answers 503 to the first ``failures`` requests."""

    def __init__(self, port: int, failures: int = 0) -> None:
        self.port, self.failures = port, failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[dict[str, Any]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = 503 if len(fake.received) <= fake.failures else 200
                if code == 200:
                    fake.accepted.append(json.loads(body))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def client(tmp_path: Path, port: int, database_url: str | None) -> Iterator[TestClient]:
    settings = service_settings(
        tmp_path, "ground_lock", database_url=database_url,
        dispatch_url=f"http://127.0.0.1:{port}/cases",
        dispatch_secret=SECRET, dispatch_poll_s=0.05, dispatch_backoff_s=0.1,
        public_url="https://sw.example.cn")
    with TestClient(create_app(settings)) as client:
        yield client


def pending_cases(client: TestClient, photos: int) -> list[dict[str, Any]]:
    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), 70, np.uint8))
    assert ok
    files = [("files", (f"p{i}.jpg", io.BytesIO(data.tobytes()), "image/jpeg"))
             for i in range(photos)]
    job = client.post("/v1/uploads/photos", headers=keys(client, "ingest"), files=files).json()
    reviewer = keys(client, "reviewer", "reviewer-li")
    assert wait_until(lambda: job_done(client, job["job_id"], reviewer))
    items: list[dict[str, Any]] = client.get("/v1/cases", headers=reviewer).json()["items"]
    return items


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
    return data, {"X-Streetwatch-Signature": signature, "Content-Type": "application/json"}


def test_confirmed_cases_reach_dispatch_once_even_after_an_outage(
        client: TestClient, port: int) -> None:
    cases = pending_cases(client, photos=3)  # no place: three separate cases
    assert len(cases) == 3
    reviewer = keys(client, "reviewer", "reviewer-li")
    time.sleep(0.5)  # the dispatch system is down: connection refused, retried
    for case in cases[:2]:
        response = client.post(f"/v1/cases/{case['id']}/review", headers=reviewer,
                               json={"action": "confirm", "note": "seen it"})
        assert response.status_code == 200 and response.json()["status"] == "dispatch_queued"
    rejected = client.post(f"/v1/cases/{cases[2]['id']}/review", headers=reviewer,
                           json={"action": "reject", "reason": "false_positive"})
    assert rejected.json()["status"] == "rejected"
    time.sleep(0.5)
    fake = FakeDispatch(port, failures=2)  # up, but answering 503 twice
    try:
        def delivered() -> bool:
            return all(client.get(f"/v1/cases/{c['id']}", headers=reviewer).json()["status"]
                       == "dispatched" for c in cases[:2])
        assert wait_until(delivered)
        assert sorted(p["case_id"] for p in fake.accepted) == sorted(c["id"] for c in cases[:2])
        for headers, body in fake.received:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-streetwatch-signature"] == expected
            assert headers["idempotency-key"] == json.loads(body)["case_id"]
        first = fake.accepted[0]
        assert first["version"] == "1" and first["category"]["key"] == "ground_lock"
        assert first["reviewer"] == "reviewer-li"
        assert first["location"]["places"] == []  # photos without GPS: no place
        assert first["evidence"][0]["url"].startswith("https://sw.example.cn/v1/evidence/")
        time.sleep(0.3)  # nothing more arrives
        assert len(fake.accepted) == 2
    finally:
        fake.close()
    audit = client.get(f"/v1/cases/{cases[0]['id']}/audit", headers=reviewer).json()
    assert [(a["from"], a["to"]) for a in audit] == [
        (None, "pending_review"), ("pending_review", "confirmed"),
        ("confirmed", "dispatch_queued"), ("dispatch_queued", "dispatched")]
    assert audit[1]["who"] == "reviewer-li" and audit[1]["why"] == "seen it"


def test_signed_callbacks_move_cases_and_unsigned_ones_do_not(client: TestClient) -> None:
    (case,) = pending_cases(client, photos=1)
    reviewer = keys(client, "reviewer", "reviewer-li")
    client.post(f"/v1/cases/{case['id']}/review", headers=reviewer, json={"action": "confirm"})
    body, headers = signed({"case_id": case["id"], "status": "closed", "note": "removed"})
    forged = client.post("/v1/dispatch/callbacks", content=body,
                         headers={**headers, "X-Streetwatch-Signature": "sha256=00"})
    assert forged.status_code == 401
    done = client.post("/v1/dispatch/callbacks", content=body, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "closed"
    body, headers = signed({"case_id": case["id"], "status": "teleported"})
    assert client.post("/v1/dispatch/callbacks", content=body,
                       headers=headers).status_code == 422


def test_review_rules(client: TestClient) -> None:
    first, second = pending_cases(client, photos=2)
    reviewer = keys(client, "reviewer", "reviewer-li")

    def review(case: dict[str, Any], **body: Any) -> Any:
        return client.post(f"/v1/cases/{case['id']}/review", headers=reviewer, json=body)

    assert review(first, action="reject").status_code == 422  # needs a reason
    assert review(first, action="correct", category="vehicle").status_code == 422
    corrected = review(first, action="correct", category="street_vending",
                       box=[10, 10, 50, 40]).json()
    assert corrected["category"] == "street_vending" and corrected["dispatch_code"] == "0501"
    assert corrected["status"] == "pending_review" and corrected["box"] == [10, 10, 50, 40]
    assert review(second, action="reject", reason="duplicate").json()["status"] == "rejected"
    again = review(second, action="confirm")
    assert again.status_code == 409 and "rejected" in again.json()["error"]
    assert client.post(f"/v1/cases/{first['id']}/review", headers=keys(client, "ingest"),
                       json={"action": "confirm"}).status_code == 403
