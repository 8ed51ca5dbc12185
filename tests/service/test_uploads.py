"""Photo uploads through the API: stored durably, judged by content, turned into cases by
the worker, listed and shown with their evidence; a restart resumes without duplicates."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import job_done, keys, service_settings, wait_until

from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app
from streetwatch.service.db import Job, open_database
from streetwatch.service.settings import Settings

AD = TAXONOMY.by_key("unauthorized_ad").id


def jpeg(shade: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), shade, np.uint8))
    assert ok
    return data.tobytes()


def jpeg_taken(shade: int, taken: str) -> bytes:
    """A grey 160x120 JPEG whose EXIF DateTime is ``taken`` (Asia/Shanghai wall time)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0132] = taken
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (shade,) * 3).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height``: what a decompression bomb looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return service_settings(tmp_path, "unauthorized_ad", database_url=database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def upload(client: TestClient, *files: tuple[str, bytes], **form: str) -> dict[str, object]:
    response = client.post("/v1/uploads/photos", headers=keys(client, "ingest"), data=form,
                           files=[("files", (name, io.BytesIO(data), "image/jpeg"))
                                  for name, data in files])
    return {**response.json(), "http": response.status_code}


def test_photos_become_cases_with_evidence(client: TestClient) -> None:
    accepted = upload(client, ("a.jpg", jpeg(80)), ("b.jpg", jpeg(120)), lat="30.25",
                      lon="120.15", vehicle_id="patrol-9")
    assert accepted["http"] == 202 and accepted["photos"] == 2
    reviewer = keys(client, "reviewer")
    job_url = f"/v1/jobs/{accepted['job_id']}"
    assert wait_until(lambda: client.get(job_url, headers=reviewer).json()["status"] == "done")
    job = client.get(job_url, headers=reviewer).json()
    assert job["progress"] == 1.0 and job["model"] == "fixed:1"
    # both photos carry the form's position: the same ad seen twice is one case
    assert job["cases"] == 1
    listed = client.get("/v1/cases", headers=reviewer, params={"status": "pending_review"})
    (case,) = listed.json()["items"]
    assert case["category"] == "unauthorized_ad" and case["dispatch_code"] == "0201"
    assert case["source"] == {"kind": "vehicle", "id": "patrol-9"}
    assert case["location"] == {"lat": 30.25, "lon": 120.15}
    detail = client.get(f"/v1/cases/{case['id']}", headers=reviewer).json()
    for item in detail["evidence"]:
        image = client.get(item["url"], headers=reviewer)
        assert image.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(image.content).hexdigest() == item["sha256"]
    # the frame is the photo as uploaded, byte for byte, not a re-encoding of it
    (frame,) = (e for e in detail["evidence"] if e["kind"] == "frame")
    assert frame["sha256"] in {hashlib.sha256(jpeg(shade)).hexdigest() for shade in (80, 120)}


def test_evidence_is_drawn_for_the_box_and_class_as_reviewed(client: TestClient) -> None:
    """A candidate holds its crop and frame; the frame is the upload itself, linked, not
    copied. Correcting the box redraws the crop; confirming draws the frame with the box
    and class as reviewed, which is what the dispatch system is sent."""
    from streetwatch.inference.cases import EvidenceStore, box_evidence
    from streetwatch.service.db import Case, OutboxEntry

    photo = jpeg(70)
    accepted = upload(client, ("a.jpg", photo))
    reviewer = keys(client, "reviewer")
    assert wait_until(partial(job_done, client, str(accepted["job_id"]), reviewer))
    (case,) = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert sorted(e["kind"] for e in case["evidence"]) == ["crop", "frame"]
    state = client.app.state.sw  # type: ignore[attr-defined]
    sha = hashlib.sha256(photo).hexdigest()
    assert (state.evidence / f"{sha}.jpg").stat().st_ino == state.store.path(sha).stat().st_ino

    def drawn(box: list[float], category: str) -> dict[str, str]:
        """What each kind of box evidence should hold, drawn here from the photo."""
        image = np.asarray(cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR),
                           np.uint8)
        with_box = box_evidence(EvidenceStore(Path(state.evidence)), image, tuple(box),
                                category, case["confidence"])
        return {e.kind: e.sha256 for e in with_box}

    review = f"/v1/cases/{case['id']}/review"
    box = [20.0, 30.0, 90.0, 80.0]
    corrected = client.post(review, headers=reviewer,
                            json={"action": "correct", "box": box, "category": "street_vending"})
    assert corrected.status_code == 200
    kinds = {e["kind"]: e["sha256"] for e in corrected.json()["evidence"]}
    assert kinds.keys() == {"crop", "frame"}
    assert kinds["crop"] == drawn(box, "street_vending")["crop"] != \
        {e["kind"]: e["sha256"] for e in case["evidence"]}["crop"]

    confirmed = client.post(review, headers=reviewer, json={"action": "confirm"})
    assert confirmed.status_code == 200
    evidence = confirmed.json()["evidence"]
    assert evidence[0]["kind"] == "annotated"  # first: what a dispatcher shows
    assert {e["kind"]: e["sha256"] for e in evidence} == {
        **drawn(box, "street_vending"), "frame": sha}
    for item in evidence:
        image = client.get(item["url"], headers=reviewer)
        assert hashlib.sha256(image.content).hexdigest() == item["sha256"]
    with state.sessions() as session:
        (entry,) = session.query(OutboxEntry).all()
        assert [e["sha256"] for e in entry.payload["evidence"]] == \
            [e["sha256"] for e in evidence]
        assert session.get(Case, case["id"]).status == "dispatch_queued"


@pytest.mark.parametrize(("name", "data", "status", "message"), [
    ("empty.jpg", b"", 422, "empty"),
    ("notes.jpg", b"this is a text file, not a photo\n" * 10, 415, "not an image"),
    ("cut.jpg", jpeg(100)[:300], 422, "damaged"),
    ("bomb.png", png_header_only(20000, 20000), 413, "pixels"),
    ("big.png", png_header_only(9000, 9000), 413, "9000x9000 is more than"),
])
def test_bad_photos_are_refused_and_the_service_stays_up(
        client: TestClient, name: str, data: bytes, status: int, message: str) -> None:
    refused = upload(client, ("good.jpg", jpeg(90)), (name, data))
    assert refused["http"] == status
    assert name in str(refused["error"]) and message in str(refused["error"])
    with client.app.state.sw.sessions() as session:  # type: ignore[attr-defined]
        assert session.query(Job).count() == 0  # nothing half-accepted
    assert client.get("/healthz").status_code == 200


def test_roles_are_checked(client: TestClient) -> None:
    as_reviewer = client.post("/v1/uploads/photos", headers=keys(client, "reviewer"),
                              files=[("files", ("a.jpg", io.BytesIO(jpeg(1)), "image/jpeg"))])
    assert as_reviewer.status_code == 403
    assert client.get("/v1/cases", headers=keys(client, "ingest")).status_code == 403
    assert client.get("/v1/evidence/..%2F..%2Fetc%2Fpasswd",
                      headers=keys(client, "reviewer")).status_code == 404


def test_a_full_queue_answers_503_with_retry_after(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"queue_limit": 1}))
    client = TestClient(app)  # no lifespan: the worker does not run, jobs stay queued
    assert upload(client, ("a.jpg", jpeg(5)))["http"] == 202
    response = client.post("/v1/uploads/photos", headers=keys(client, "ingest"),
                           files=[("files", ("b.jpg", io.BytesIO(jpeg(6)), "image/jpeg"))])
    assert response.status_code == 503 and response.headers["retry-after"] == "30"


def test_a_restart_resumes_the_job_without_duplicates(settings: Settings) -> None:
    first = TestClient(create_app(settings))  # accepted, then the process "dies"
    accepted = upload(first, ("a.jpg", jpeg(50)))
    url = f"/v1/jobs/{accepted['job_id']}"
    _engine, sessions = open_database(settings.db_url)

    def left_running() -> None:  # what a crash during the job leaves behind
        with sessions() as session:
            job = session.get(Job, str(accepted["job_id"]))
            assert job is not None
            job.status = "running"
            session.commit()

    left_running()  # 1. crashed before storing anything
    with TestClient(create_app(settings)) as client:
        reviewer = keys(client, "reviewer")
        assert wait_until(lambda: client.get(url, headers=reviewer).json()["status"] == "done")
    left_running()  # 2. crashed after storing its cases, before marking the job done
    for _ in range(2):  # the rerun finds its cases stored and adds none; then nothing to do
        with TestClient(create_app(settings)) as client:
            reviewer = keys(client, "reviewer")

            def done(client: TestClient = client, reviewer: dict[str, str] = reviewer) -> bool:
                return bool(client.get(url, headers=reviewer).json()["status"] == "done")

            assert wait_until(done)
            assert client.get("/v1/cases", headers=reviewer).json()["total"] == 1


def test_cases_filter_and_export(client: TestClient) -> None:
    reviewer = keys(client, "reviewer")
    for lat in ("30.25", "30.30"):  # two places: two cases
        job_id = str(upload(client, ("a.jpg", jpeg(40)), lat=lat, lon="120.15",
                            vehicle_id="v7")["job_id"])
        assert wait_until(partial(job_done, client, job_id, reviewer))
    listed = client.get("/v1/cases", headers=reviewer,
                        params={"source_kind": "vehicle", "source_id": "v7"}).json()
    assert listed["total"] == 2
    assert client.get("/v1/cases", headers=reviewer,
                      params={"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0
    naive = client.get("/v1/cases", headers=reviewer, params={"until": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["error"]
    csv_text = client.get("/v1/cases.csv", headers=reviewer).text.splitlines()
    assert csv_text[0].startswith("id,status,category") and len(csv_text) == 3
    lines = client.get("/v1/cases.jsonl", headers=reviewer,
                       params={"category": "unauthorized_ad"}).text.splitlines()
    assert len(lines) == 2 and all('"category": "unauthorized_ad"' in line for line in lines)


def test_malformed_requests_say_which_field(client: TestClient) -> None:
    response = client.post("/v1/uploads/photos", headers=keys(client, "ingest"),
                           data={"lat": "north"},
                           files=[("files", ("a.jpg", io.BytesIO(jpeg(3)), "image/jpeg"))])
    assert response.status_code == 422 and response.json()["error"].startswith("body.lat:")
    missing = client.post("/v1/uploads/photos", headers=keys(client, "ingest"))
    assert missing.status_code == 422 and "files" in missing.json()["error"]


def test_a_low_case_threshold_reaches_below_the_detectors_default(tmp_path: Path) -> None:
    from service_helpers import anchor, upload_photos

    settings = service_settings(tmp_path, "unauthorized_ad", case_confidence=0.1,
                                anchors=[anchor(32, 40, 16, 8, AD, 0.2)])
    with TestClient(create_app(settings)) as client:
        upload_photos(client, [50])
        cases = client.get("/v1/cases", headers=keys(client, "reviewer")).json()["items"]
        assert [round(c["confidence"], 2) for c in cases] == [0.2]


def test_two_uploads_of_one_vehicle_at_the_same_second_keep_their_cases(
        client: TestClient) -> None:
    def shot(shade: int) -> bytes:
        return jpeg_taken(shade, "2026:05:12 09:30:00")

    reviewer = keys(client, "reviewer")
    for shade in (60, 160):  # a burst: same vehicle, same second, same kind of violation
        job = upload(client, ("burst.jpg", shot(shade)), vehicle_id="patrol-3")
        assert wait_until(partial(job_done, client, str(job["job_id"]), reviewer))
    cases = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert len(cases) == 2 and len({c["frame"] for c in cases}) == 2


def test_time_filters_with_a_zone_compare_the_same_instant(client: TestClient) -> None:
    reviewer = keys(client, "reviewer")
    job = upload(client, ("shot.jpg", jpeg_taken(90, "2026:05:12 09:30:00")))  # 01:30 UTC
    assert wait_until(partial(job_done, client, str(job["job_id"]), reviewer))

    def total(**params: str) -> int:
        return int(client.get("/v1/cases", headers=reviewer, params=params).json()["total"])

    assert total(since="2026-05-12T09:00:00+08:00") == 1  # 01:00 UTC, before the shot
    assert total(since="2026-05-12T01:00:00Z") == 1
    assert total(since="2026-05-12T10:00:00+08:00") == 0  # 02:00 UTC, after it
    assert total(until="2026-05-12T10:00:00+08:00") == 1
    assert total(until="2026-05-12T09:00:00+08:00") == 0
    # times come back with their zone, so a browser in Beijing shows 09:30, not 01:30
    [case] = client.get("/v1/cases", headers=reviewer).json()["items"]
    assert case["first_seen"] == "2026-05-12T01:30:00+00:00"
    job_json = client.get(f"/v1/jobs/{job['job_id']}", headers=reviewer).json()
    assert job_json["created_at"].endswith("+00:00")


def test_another_upload_of_an_open_case_joins_it(client: TestClient) -> None:
    """Two patrols, or the same photo sent twice, report one problem: the later sighting
    joins the stored case, while it is open and within the merge window and 30 m."""
    reviewer = keys(client, "reviewer")

    def send(shade: int, taken: str, lat: str, vehicle: str) -> dict[str, object]:
        job = upload(client, ("shot.jpg", jpeg_taken(shade, taken)), lat=lat, lon="120.15",
                     vehicle_id=vehicle)
        assert wait_until(partial(job_done, client, str(job["job_id"]), reviewer))
        return dict(client.get(f"/v1/jobs/{job['job_id']}", headers=reviewer).json())

    def cases() -> list[dict[str, object]]:
        return list(client.get("/v1/cases", headers=reviewer).json()["items"])

    first = send(60, "2026:05:12 09:30:00", "30.25", "patrol-1")
    assert first["cases"] == 1 and first["joined"] == []
    # another vehicle, 11 m north, twenty minutes later: the same ad
    second = send(70, "2026:05:12 09:50:00", "30.2501", "patrol-2")
    (case,) = cases()
    assert second["cases"] == 0 and second["joined"] == [case["id"]]
    assert case["source"] == {"kind": "vehicle", "id": "patrol-1"}
    assert case["last_seen"] == "2026-05-12T01:50:00+00:00"
    trail = client.get(f"/v1/cases/{case['id']}/audit", headers=reviewer).json()
    joined = trail[-1]
    assert joined["why"] == "the same problem seen again"
    assert joined["from"] == joined["to"] == "pending_review"
    assert joined["details"]["job"] == second["id"]
    assert joined["details"]["source"] == {"kind": "vehicle", "id": "patrol-2"}
    # 110 m away is another problem; so is the same place two hours later
    assert send(80, "2026:05:12 09:55:00", "30.251", "patrol-2")["cases"] == 1
    assert send(90, "2026:05:12 11:55:00", "30.25", "patrol-3")["cases"] == 1
    assert len(cases()) == 3

    # a confirmed case still takes the sighting (the city has it: a second case would
    # send it twice); a rejected one does not
    review = client.post(f"/v1/cases/{case['id']}/review", headers=reviewer,
                         json={"action": "confirm"})
    assert review.status_code == 200, review.text
    assert send(100, "2026:05:12 10:10:00", "30.25", "patrol-4")["cases"] == 0
    others = [c for c in cases() if c["id"] != case["id"]]
    near = next(c for c in others if c["first_seen"] == "2026-05-12T01:55:00+00:00")
    assert client.post(f"/v1/cases/{near['id']}/review", headers=reviewer,
                       json={"action": "reject", "reason": "false_positive"}).status_code == 200
    assert send(110, "2026:05:12 09:56:00", "30.251", "patrol-5")["cases"] == 1
