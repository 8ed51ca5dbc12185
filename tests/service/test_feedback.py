"""Review decisions become a dataset: confirmed and corrected boxes and the boxes reviewers
add are labels, false alarms are hard negatives, undecided frames are held back; sampled
no-candidate frames and the least-sure-first queue serve active learning."""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from service_helpers import anchor, keys, service_settings, upload_photos

from streetwatch.datasets.format import Dataset
from streetwatch.datasets.validate import inspect_dataset
from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.app import create_app
from streetwatch.service.cli import main

LOCK, AD, VEHICLE = (TAXONOMY.by_key(k).id for k in ("ground_lock", "unauthorized_ad", "vehicle"))
LOCK_BOX = [60.0, 70.0, 100.0, 90.0]  # where anchor (32, 40, 16, 8) lands in 160x120
AD_BOX = [20.0, 20.0, 40.0, 40.0]  # anchor (12, 20, 8, 8)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, "ground_lock", anchors=[
        anchor(32, 40, 16, 8, LOCK, 0.9), anchor(12, 20, 8, 8, AD, 0.45)])
    with TestClient(create_app(settings)) as client:
        yield client


def frames_of(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The job's cases grouped by frame, frames in upload order (by shade)."""
    cases = client.get("/v1/cases", headers=headers, params={"limit": 200}).json()["items"]
    by_frame: dict[str, dict[str, Any]] = defaultdict(dict)
    for case in cases:
        by_frame[case["frame"]][case["category"]] = case
    return sorted(by_frame.values(), key=lambda f: f["ground_lock"]["first_seen"])


def review(client: TestClient, headers: dict[str, str], case: dict[str, Any],
           **decision: Any) -> None:
    response = client.post(f"/v1/cases/{case['id']}/review", headers=headers, json=decision)
    assert response.status_code == 200, response.text


def test_decisions_become_labels_hard_negatives_and_held_back_frames(
        client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upload_photos(client, [40, 90, 140, 190], vehicle_id="patrol-7")
    reviewer = keys(client, "reviewer", "王审核")
    frames = frames_of(client, reviewer)
    assert len(frames) == 4 and frames[0]["ground_lock"]["detected"] == "ground_lock"

    # 1: lock confirmed, ad a false alarm, and a vending stall the model missed is added
    review(client, reviewer, frames[0]["ground_lock"], action="confirm")
    review(client, reviewer, frames[0]["unauthorized_ad"], action="reject",
           reason="false_positive")
    added = client.post(f"/v1/frames/{frames[0]['ground_lock']['frame']}/review",
                        headers=reviewer, json={"missed": [
                            {"category": "street_vending", "box": [100, 10, 150, 60]}]})
    assert added.status_code == 200 and added.json()["reviewed_by"] == "王审核"
    # 2: both false alarms: a hard negative
    review(client, reviewer, frames[1]["ground_lock"], action="reject", reason="not_a_violation")
    review(client, reviewer, frames[1]["unauthorized_ad"], action="reject",
           reason="false_positive")
    # 3: the lock is really a vending cart with a tighter box; the ad was a duplicate, which
    # says nothing of its pixels: the frame is held back
    review(client, reviewer, frames[2]["ground_lock"], action="correct",
           category="street_vending", box=[62, 68, 98, 92])
    review(client, reviewer, frames[2]["ground_lock"], action="confirm")
    review(client, reviewer, frames[2]["unauthorized_ad"], action="reject", reason="duplicate")
    # 4: one case still waits for review: held back
    review(client, reviewer, frames[3]["ground_lock"], action="confirm")

    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "feedback"
    result = CliRunner().invoke(main, ["data", "from-reviews", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 frames (1 hard_negative, 1 labelled" in result.output
    assert "2 frames held back" in result.output

    dataset = Dataset.open(out)
    assert inspect_dataset(out).errors == []
    by_kind = {r.meta["feedback"]: r for r in dataset.records}
    labelled, negative = by_kind["labelled"], by_kind["hard_negative"]
    assert labelled.group == negative.group and labelled.group.startswith("vehicle:patrol-7:")
    assert labelled.width == 160 and labelled.height == 120
    labels = dataset.labels(labelled)
    assert sorted(labels.class_id.tolist()) == [0, LOCK]  # street_vending added, lock confirmed
    boxes = {int(c): b.round(1).tolist()
             for c, b in zip(labels.class_id, labels.xyxy_pixels(160, 120), strict=True)}
    assert boxes[LOCK] == LOCK_BOX and boxes[0] == [100, 10, 150, 60]
    assert json.loads(labelled.meta["rejected"]) == [["unauthorized_ad", *AD_BOX]]
    decisions = json.loads(labelled.meta["decisions"])
    assert sorted(decisions.values()) == ["confirmed", "rejected:false_positive"]
    assert labelled.meta["reviewers"] == "王审核" and labelled.meta["added"] == "1"
    assert labelled.meta["models"] == "fixed:1"
    assert len(dataset.labels(negative)) == 0
    assert len(json.loads(negative.meta["rejected"])) == 2

    report = json.loads((out / "feedback.json").read_text(encoding="utf-8"))
    held = report["held_back"]
    assert set(held) == {frames[2]["ground_lock"]["frame"], frames[3]["ground_lock"]["frame"]}
    assert "duplicate" in held[frames[2]["ground_lock"]["frame"]]
    assert "pending_review" in held[frames[3]["ground_lock"]["frame"]]

    # the duplicate is resolved when the reviewer draws the ad box as a real ad
    client.post(f"/v1/frames/{frames[2]['ground_lock']['frame']}/review", headers=reviewer,
                json={"missed": [{"category": "unauthorized_ad", "box": AD_BOX}]})
    again = CliRunner().invoke(main, ["data", "from-reviews", "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    again = CliRunner().invoke(main, ["data", "from-reviews", "--out", str(out), "--force"])
    assert again.exit_code == 0, again.output
    corrected = next(r for r in Dataset.open(out).records
                     if "corrected" in r.meta["decisions"])
    assert sorted(Dataset.open(out).labels(corrected).class_id.tolist()) == [0, AD]


def test_the_feedback_export_over_the_api_is_for_admins(client: TestClient) -> None:
    upload_photos(client, [60])
    reviewer = keys(client, "reviewer")
    frame = frames_of(client, reviewer)[0]
    review(client, reviewer, frame["ground_lock"], action="confirm")
    review(client, reviewer, frame["unauthorized_ad"], action="reject", reason="false_positive")
    assert client.get("/v1/feedback.zip", headers=reviewer).status_code == 403
    admin = keys(client, "admin")
    response = client.get("/v1/feedback.zip", headers=admin)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        manifest = archive.read("feedback/manifest.jsonl").decode()
    assert "feedback/data.yaml" in names and len(manifest.splitlines()) == 1
    later = client.get("/v1/feedback.zip", headers=admin,
                       params={"since": "2999-01-01T00:00:00Z"})
    with zipfile.ZipFile(io.BytesIO(later.content)) as archive:
        assert archive.read("feedback/manifest.jsonl").decode() == ""
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).astimezone(
        timezone(timedelta(hours=8))).isoformat()  # the same instant, written in +08:00
    recent = client.get("/v1/feedback.zip", headers=admin, params={"since": an_hour_ago})
    with zipfile.ZipFile(io.BytesIO(recent.content)) as archive:
        assert len(archive.read("feedback/manifest.jsonl").decode().splitlines()) == 1
    naive = client.get("/v1/feedback.zip", headers=admin, params={"since": "2026-01-01T00:00"})
    assert naive.status_code == 422 and "time zone" in str(naive.json()), naive.json()


def test_the_queue_can_put_the_least_sure_first(client: TestClient) -> None:
    upload_photos(client, [70])
    reviewer = keys(client, "reviewer")
    newest = client.get("/v1/cases", headers=reviewer).json()["items"]
    unsure = client.get("/v1/cases", headers=reviewer, params={"order": "uncertain"}).json()
    assert len(newest) == 2
    # threshold 0.4: the ad at 0.45 is nearer than the lock at 0.9
    assert [c["category"] for c in unsure["items"]] == ["unauthorized_ad", "ground_lock"]
    bad = client.get("/v1/cases", headers=reviewer, params={"order": "random"})
    assert bad.status_code == 422


def test_frames_without_candidates_are_sampled_for_misses(tmp_path: Path) -> None:
    # a model that only ever sees a vehicle: no case, every frame is a candidate-free frame
    settings = service_settings(tmp_path, "vehicle", sample_rate=1.0)
    with TestClient(create_app(settings)) as client:
        upload_photos(client, [30, 80, 130], vehicle_id="patrol-2")
        reviewer = keys(client, "reviewer", "li")
        samples = client.get("/v1/review/samples", headers=reviewer).json()
        assert samples["total"] == 3 and client.get(
            "/v1/cases", headers=reviewer).json()["total"] == 0
        first, second, _ = samples["items"]
        assert client.get(first["url"], headers=reviewer).status_code == 200

        def look(frame: dict[str, Any], missed: list[dict[str, Any]]) -> Any:
            return client.post(f"/v1/frames/{frame['sha256']}/review", headers=reviewer,
                               json={"missed": missed})

        outside = look(first, [{"category": "ground_lock", "box": [100, 80, 170, 110]}])
        assert outside.status_code == 422 and "missed[0].box" in outside.json()["error"]
        unknown = look(first, [{"category": "bicycle", "box": [1, 1, 5, 5]}])
        assert unknown.status_code == 422 and "missed[0].category" in unknown.json()["error"]
        clipped = look(first, [{"category": "ground_lock", "box": [100, 80, 130, 110]},
                               {"category": "vehicle", "box": [-0.5, 60, 40, 121.5]}])
        assert clipped.status_code == 200
        assert clipped.json()["added"][1]["box"] == [0, 60, 40, 120]
        assert look(second, []).status_code == 200  # looked over: nothing missed
        assert client.get("/v1/review/samples", headers=reviewer).json()["total"] == 1
        assert client.post("/v1/frames/" + "0" * 64 + "/review", headers=reviewer,
                           json={"missed": []}).status_code == 404

        admin = keys(client, "admin")
        archive = zipfile.ZipFile(io.BytesIO(client.get("/v1/feedback.zip", headers=admin)
                                             .content))
        rows = [json.loads(line) for line in
                archive.read("feedback/manifest.jsonl").decode().splitlines()]
        assert sorted(r["meta"]["feedback"] for r in rows) == ["labelled", "reviewed_sample"]
        assert sorted(r["meta"]["added"] for r in rows) == ["0", "2"]
        report = json.loads(archive.read("feedback/feedback.json"))
        assert report["held_back"] == {}  # the frame nobody looked at is no decision at all


def test_no_frame_is_sampled_at_rate_zero(tmp_path: Path) -> None:
    settings = service_settings(tmp_path, "vehicle", sample_rate=0.0)
    with TestClient(create_app(settings)) as client:
        upload_photos(client, [30, 80])
        reviewer = keys(client, "reviewer")
        assert client.get("/v1/review/samples", headers=reviewer).json()["total"] == 0
