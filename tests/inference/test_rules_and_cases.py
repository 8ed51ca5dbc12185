"""Unit tests of the camera file, the rule engine and the case builder, with hand-made tracks."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from streetwatch.inference.camera import (
    DEFAULT_DWELL,
    Allowed,
    Camera,
    CameraError,
    ZoneIndex,
    load_camera,
)
from streetwatch.inference.cases import (
    CASE_NAMESPACE,
    CaseBuilder,
    EvidenceStore,
    GridError,
    GridIndex,
    ModelRef,
    Place,
    Source,
    distance_m,
)
from streetwatch.inference.rules import Firing, RuleEngine
from streetwatch.inference.tracking import Observation, Track
from streetwatch.inference.types import Detections, Frame, Location
from streetwatch.models.taxonomy import TAXONOMY

T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)  # a Tuesday; 10:00 in Shanghai
W = H = 100
IN_HATCHED = (10.0, 40.0, 40.0, 80.0)  # stands at (0.25, 0.8)
IN_STALLS = (60.0, 40.0, 90.0, 80.0)  # stands at (0.75, 0.8)
NOWHERE = (10.0, 10.0, 40.0, 40.0)  # stands at (0.25, 0.4)
CAMERA: dict[str, Any] = {
    "id": "cam-1", "timezone": "Asia/Shanghai",
    "zones": [
        {"name": "hatched", "type": "no_parking",
         "points": [[0.05, 0.5], [0.5, 0.5], [0.5, 0.9], [0.05, 0.9]]},
        {"name": "stalls", "type": "market",
         "points": [[0.55, 0.5], [0.95, 0.5], [0.95, 0.9], [0.55, 0.9]]},
        {"name": "sky", "type": "exclude", "points": [[0, 0], [1, 0], [1, 0.3], [0, 0.3]]},
    ],
    "rules": {"dwell": [
        {"class": "vehicle", "zone": "no_parking", "seconds": 300, "stationary": True,
         "becomes": "illegal_parking"},
        {"class": "street_vending", "zone": "market", "seconds": 60},
    ]},
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def track(tid: int, cls: str, seconds: Sequence[float], box: Sequence[float] = IN_HATCHED,
          conf: float | Sequence[float] = 0.9, still_from: float | None = None) -> Track:
    confs = [conf] * len(seconds) if isinstance(conf, float) else list(conf)
    cid = TAXONOMY.by_key(cls).id
    return Track(tid, [Observation(at(s), np.array(box, np.float32), c, cid)
                       for s, c in zip(seconds, confs, strict=True)],
                 stationary_since=None if still_from is None else at(still_from))


def camera(tmp_path: Path, **changes: Any) -> Camera:
    rules = {**CAMERA["rules"], **changes.pop("rules", {})}
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump({**CAMERA, **changes, "rules": rules}))
    return load_camera(path)


# --- camera.py --------------------------------------------------------------------------

@pytest.mark.parametrize(("snippet", "expected"), [
    ("zones: [{name: z, type: no_parking, points: [[0, 0], [2, 0], [1, 1]]}]",
     ["key 'zones.0.points'", "outside 0..1"]),
    ("zones: [{name: z, type: no_parking, points: [[0, 0], [1, 1], [1, 0], [0, 1]]}]",
     ["key 'zones.0.points'", "crosses itself"]),
    ("zones: [{name: z, type: parking, points: [[0, 0], [1, 0], [1, 1]]}]",
     ["key 'zones.0.type'"]),
    ("rules: {min_confidence: {car: 0.5}}", ["key 'rules.min_confidence'", "'car'"]),
    ("rules: {dwell: [{class: ground_lock, zone: pavement, seconds: 5}]}",
     ["key 'rules.dwell.0.zone'", "'pavement'"]),
    ("rules: {dwell: [{class: vehicle, seconds: 5, becomes: vehicle}]}",
     ["key 'rules.dwell.0.becomes'", "cannot be a case"]),
    ("timezone: Mars/Olympus_Mons", ["key 'timezone'", "unknown time zone"]),
    ("zonez: []", ["key 'zonez'"]),
])
def test_camera_errors_name_the_file_and_the_key(tmp_path: Path, snippet: str,
                                                 expected: list[str]) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(f"id: c1\n{snippet}\n")
    with pytest.raises(CameraError) as info:
        load_camera(path)
    assert str(path) in str(info.value)
    for part in expected:
        assert part in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("- id: c1\n", "is a mapping"), ("id: [unclosed\n", "not valid YAML"), (None, "not found")])
def test_unusable_camera_files(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "cam.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(CameraError, match=expected):
        load_camera(path)


def test_defaults_apply_when_rules_are_omitted(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text("id: c1\nzones:\n"
                    "  - {name: a, type: no_parking, points: [[0, 0], [1, 0], [1, 1]]}\n"
                    "  - {name: b, type: sidewalk, points: [[0, 0], [1, 1], [0, 1]]}\n")
    rules = load_camera(path).rules
    assert len(rules.dwell) == 7 and rules.dwell == DEFAULT_DWELL and rules.allowed == []


def test_a_camera_without_rules_or_parking_zones_loads(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text("id: c1\nzones: [{name: m, type: market, points: [[0, 0], [1, 0], [1, 1]]}]\n")
    assert len(load_camera(path).rules.dwell) == 7


def test_a_box_is_in_a_zone_by_its_bottom_centre(tmp_path: Path) -> None:
    zones = ZoneIndex(camera(tmp_path).zones)
    boxes = np.array([[10, 60, 40, 95], [10, 20, 40, 80], IN_STALLS], np.float32)
    assert zones.member(boxes, W, H) == [set(), {"hatched", "no_parking"}, {"stalls", "market"}]


def test_allowed_windows_and_days() -> None:
    def window(start: str, end: str, days: list[str] | None = None) -> Allowed:
        extra = {} if days is None else {"days": days}
        return Allowed.model_validate({"class": "street_vending", "zone": "m", "from": start,
                                       "to": end, **extra})

    day = window("09:00", "11:00")
    assert day.covers(datetime(2026, 5, 12, 10)) and day.covers(datetime(2026, 5, 12, 9))
    assert not day.covers(datetime(2026, 5, 12, 11)) and not day.covers(datetime(2026, 5, 12, 8))
    night = window("22:00", "02:00")
    assert night.covers(datetime(2026, 5, 12, 23, 30)) and night.covers(datetime(2026, 5, 12, 1))
    assert not night.covers(datetime(2026, 5, 12, 12))
    assert not night.covers(datetime(2026, 5, 12, 2))
    weekend = window("09:00", "11:00", ["sat", "sun"])
    assert weekend.covers(datetime(2026, 5, 16, 10)) and weekend.covers(datetime(2026, 5, 17, 10))
    assert not weekend.covers(datetime(2026, 5, 12, 10))  # a Tuesday


def test_an_over_midnight_window_belongs_to_the_day_it_starts() -> None:
    friday_night = Allowed.model_validate({"class": "street_vending", "zone": "m",
                                           "from": "22:00", "to": "02:00", "days": ["fri"]})
    assert friday_night.covers(datetime(2026, 5, 16, 1))  # Saturday 01:00, Friday's night
    assert not friday_night.covers(datetime(2026, 5, 15, 1))  # Friday 01:00, Thursday's


# --- rules.py with a camera -------------------------------------------------------------

def test_a_stationary_vehicle_fires_after_its_seconds_inside_the_zone(tmp_path: Path) -> None:
    cam = camera(tmp_path)
    early = track(1, "vehicle", [0, 150, 299], still_from=0)
    assert RuleEngine(cam).judge([early], at(299), W, H) == []
    late_still = track(2, "vehicle", [0, 150, 300], still_from=100)  # present 300, still 200
    outside = track(3, "vehicle", [0, 150, 300], box=NOWHERE, still_from=0)
    moving = track(4, "vehicle", [0, 150, 300])
    assert RuleEngine(cam).judge([late_still, outside, moving], at(300), W, H) == []
    parked = track(5, "vehicle", [0, 150, 300], still_from=0)
    (firing,) = RuleEngine(cam).judge([parked], at(300), W, H)
    assert firing.track is parked and firing.category == "illegal_parking"
    assert firing.time == at(300) and "stationary in no_parking" in firing.rule


def test_a_presence_rule_counts_from_first_seen_and_fires_once(tmp_path: Path) -> None:
    engine = RuleEngine(camera(tmp_path))
    assert engine.judge([track(1, "street_vending", [0, 59], box=IN_STALLS)], at(59), W, H) == []
    stall = track(1, "street_vending", [0, 59, 60], box=IN_STALLS)
    (firing,) = engine.judge([stall], at(60), W, H)
    assert firing.category == "street_vending" and "present in market" in firing.rule
    stall.observations.append(Observation(at(61), stall.last.xyxy, 0.9, stall.class_id))
    assert engine.judge([stall], at(61), W, H) == []
    assert engine.fired == {1}


def test_a_schedule_excuses_in_its_local_hours_only(tmp_path: Path) -> None:
    cam = camera(tmp_path, rules={"allowed": [
        {"class": "street_vending", "zone": "stalls", "from": "09:00", "to": "11:00"}]})
    stall = track(1, "street_vending", [0, 60], box=IN_STALLS)
    assert RuleEngine(cam).judge([stall], at(60), W, H) == []  # 10:01 in Shanghai
    evening = track(2, "street_vending", [8 * 3600, 8 * 3600 + 60], box=IN_STALLS)
    # 10:01 UTC is 18:01 in Shanghai: outside the window (inside it, were it read as UTC)
    assert len(RuleEngine(cam).judge([evening], evening.last_seen, W, H)) == 1


def test_a_schedule_for_any_zone_excuses_everywhere(tmp_path: Path) -> None:
    cam = camera(tmp_path, rules={"allowed": [
        {"class": "street_vending", "zone": "any", "from": "09:00", "to": "11:00"}]})
    assert RuleEngine(cam).judge([track(1, "street_vending", [0, 60], box=IN_STALLS)],
                                 at(60), W, H) == []


def test_the_camera_min_confidence_blocks_a_weak_track(tmp_path: Path) -> None:
    cam = camera(tmp_path, rules={"min_confidence": {"street_vending": 0.8}})
    weak = track(1, "street_vending", [0, 60], box=IN_STALLS, conf=0.7)
    assert RuleEngine(cam, min_confidence={"street_vending": 0.1}).judge(
        [weak], at(60), W, H) == []
    assert len(RuleEngine(camera(tmp_path)).judge([weak], at(60), W, H)) == 1  # default 0.4


def test_keep_drops_detections_in_an_exclude_zone(tmp_path: Path) -> None:
    engine = RuleEngine(camera(tmp_path))
    detections = Detections(np.array([[10, 0, 40, 20], NOWHERE, IN_STALLS], np.float32),
                            np.array([0.9, 0.8, 0.7], np.float32), np.array([5, 2, 0], np.int64))
    kept = engine.keep(detections, W, H)
    np.testing.assert_array_equal(kept.class_id, [2, 0])
    np.testing.assert_allclose(kept.confidence, [0.8, 0.7])
    assert len(RuleEngine().keep(detections, W, H)) == 3


# --- rules.py without a camera ----------------------------------------------------------

def test_without_a_camera_an_ended_track_of_a_case_class_needs_confirm_frames() -> None:
    engine = RuleEngine(confirm_frames=3)
    assert engine.judge_ended([track(1, "ground_lock", [0, 1])]) == []
    assert engine.judge_ended([track(2, "ground_lock", [0, 1, 2], conf=[0.9, 0.3, 0.9])]) == []
    assert engine.judge_ended([track(3, "vehicle", list(range(10)))]) == []
    (firing,) = engine.judge_ended([track(5, "cable_clutter", [0, 1, 3])])
    assert firing.track.tracker_id == 5 and firing.rule == "confirmed in 3 frames"
    assert firing.time == at(3)  # when the object was last seen
    assert engine.judge_ended([firing.track]) == []  # a track fires once
    # a moving camera's default: two sightings
    assert len(RuleEngine().judge_ended([track(6, "ground_lock", [0, 1])])) == 1
    assert RuleEngine().judge_ended([track(7, "ground_lock", [0])]) == []
    (photo,) = RuleEngine(confirm_frames=1).judge_ended([track(8, "ground_lock", [0])])
    assert photo.rule == "confirmed in 1 frame"


def test_a_moving_track_fires_as_the_case_class_its_sure_sightings_confirm() -> None:
    vehicle, parked, stall = (TAXONOMY.by_key(k).id for k in
                              ("vehicle", "illegal_parking", "street_vending"))

    def seen(*sightings: tuple[int, float]) -> Track:
        return Track(1, [Observation(at(k), np.array(IN_HATCHED, np.float32), conf, cid)
                         for k, (cid, conf) in enumerate(sightings)])

    car = seen(*[(vehicle, 0.9)] * 6, (parked, 0.7), (parked, 0.8), (vehicle, 0.95))
    assert car.class_id == vehicle  # most of its confidence says lawful
    (firing,) = RuleEngine().judge_ended([car])
    assert firing.category == "illegal_parking" and firing.observed == parked
    assert firing.evidence.class_id == parked and firing.evidence.confidence == 0.8
    assert car.best.confidence == 0.95  # not the evidence of an illegal-parking case
    # one sure sighting does not confirm; a weak one does not count
    assert RuleEngine().judge_ended([seen(*[(vehicle, 0.9)] * 6, (parked, 0.8))]) == []
    assert RuleEngine().judge_ended([seen((parked, 0.8), (parked, 0.3))]) == []
    # of two confirmed case classes, the one with more confidence in all
    (both,) = RuleEngine().judge_ended([seen((parked, 0.5), (parked, 0.5), (stall, 0.9),
                                             (stall, 0.6))])
    assert both.category == "street_vending"


def test_tracks_that_are_over_are_forgotten_once_judged() -> None:
    engine = RuleEngine()
    done = track(5, "cable_clutter", [0, 1, 3])
    assert len(engine.judge_ended([done])) == 1 and engine.fired == {5}
    engine.forget([done])
    assert engine.fired == set()  # a stream's memory does not grow with its tracks


def test_without_a_camera_live_tracks_are_not_judged() -> None:
    """A moving camera's violation waits for its track to end, so the case gets the whole
    pass (its nearest place), not the moment it was confirmed."""
    assert RuleEngine().judge([track(5, "cable_clutter", list(range(10)))], at(9), W, H) == []


def test_with_a_camera_ended_tracks_are_not_judged(tmp_path: Path) -> None:
    stall = track(1, "street_vending", list(range(0, 120, 10)), box=IN_STALLS)
    assert RuleEngine(camera(tmp_path)).judge_ended([stall]) == []


# --- cases.py ---------------------------------------------------------------------------

IMAGE = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)


def builder(tmp_path: Path, kind: str = "camera", **kwargs: Any) -> CaseBuilder:
    return CaseBuilder(EvidenceStore(tmp_path / "evidence"),
                       ModelRef(name="m", version="1", sha256=None),
                       Source.model_validate({"kind": kind, "id": "src-1"}), **kwargs)


def fire(tid: int, cls: str, box: Sequence[float] = (10, 10, 50, 50), start: float = 0,
         lat: float | None = None) -> tuple[Firing, Frame]:
    t = track(tid, cls, [start, start + 5], box=box)
    location = None if lat is None else Location(lat, 120.15)
    return Firing(t, cls, "rule", t.last_seen), Frame("src-1", tid, t.best.time, IMAGE, location)


def test_evidence_is_stored_once_per_content(tmp_path: Path) -> None:
    cases = builder(tmp_path, fixed_location=Place(lat=30.25, lon=120.15))
    first = cases.add(*fire(1, "ground_lock"))
    second = cases.add(*fire(2, "unauthorized_ad", box=(40, 20, 70, 50)))
    assert first is not None and second is not None
    frames = [e for c in (first, second) for e in c.evidence if e.kind == "frame"]
    assert frames[0] == frames[1]
    files = sorted(p.name for p in (tmp_path / "evidence").iterdir())
    assert len(files) == 5 and all(name.endswith(".jpg") for name in files)
    for evidence in first.evidence + second.evidence:
        data = (tmp_path / evidence.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == evidence.sha256
    assert first.grid_cell is None and first.frame_size == (80, 60)


def test_gps_firings_merge_within_30_m_of_the_same_category(tmp_path: Path) -> None:
    cases = builder(tmp_path, kind="vehicle")
    assert cases.add(*fire(1, "ground_lock", lat=30.25)) is not None
    assert cases.add(*fire(2, "ground_lock", box=(60, 10, 70, 20), start=100,
                           lat=30.2502)) is None  # ~22 m, boxes apart
    (case,) = cases.candidates
    assert case.tracks == [1, 2] and case.last_seen == at(105) and case.first_seen == at(0)
    assert cases.add(*fire(3, "ground_lock", start=200, lat=30.2506)) is not None  # ~67 m
    assert cases.add(*fire(4, "cable_clutter", start=200, lat=30.25)) is not None
    assert cases.add(*fire(5, "ground_lock", start=3706, lat=30.25)) is not None  # > 1 h
    assert [c.tracks for c in cases.candidates] == [[1, 2], [3], [4], [5]]


def test_a_row_of_posters_is_one_case_with_each_poster_on_the_map(tmp_path: Path) -> None:
    """Merging is to any place a case holds: posters every 20 m along 80 m of street are one
    case, each of them a place of it."""
    cases = builder(tmp_path, kind="vehicle")
    step = 20 / 111_195  # 20 m of latitude
    for i in range(5):
        cases.add(*fire(i + 1, "unauthorized_ad", start=10 * i, lat=30.25 + i * step))
    (case,) = cases.candidates
    assert case.tracks == [1, 2, 3, 4, 5]
    assert [round(p.lat, 6) for p in case.places] == [round(30.25 + i * step, 6)
                                                      for i in range(5)]
    assert case.location == case.places[0]


def test_a_sighting_between_two_cases_folds_them_into_one(tmp_path: Path) -> None:
    """Tracks end out of order, so two rows of posters can grow towards each other; the
    sighting that joins them makes them one case (not where cases are published as they
    are made: ``fold=False``)."""
    for fold, expected in ((True, [[1, 3, 2]]), (False, [[1, 3], [2]])):
        cases = builder(tmp_path / str(fold), kind="vehicle", fold=fold)
        m = 1 / 111_195
        cases.add(*fire(1, "unauthorized_ad", start=0, lat=30.25))
        cases.add(*fire(2, "unauthorized_ad", start=5, lat=30.25 + 50 * m))  # 50 m: apart
        cases.add(*fire(3, "unauthorized_ad", start=9, lat=30.25 + 25 * m))  # 25 m from both
        assert [c.tracks for c in cases.candidates] == expected
        if fold:
            assert cases.candidates[0].first_seen == at(0)
            assert len(cases.candidates[0].places) == 3


def test_a_fixed_camera_merges_by_box_overlap(tmp_path: Path) -> None:
    cases = builder(tmp_path, fixed_location=Place(lat=30.25, lon=120.15))
    assert cases.add(*fire(1, "unauthorized_ad", box=(10, 10, 50, 50))) is not None
    assert cases.add(*fire(2, "unauthorized_ad", box=(20, 10, 60, 50), start=9)) is None
    assert cases.add(*fire(3, "unauthorized_ad", box=(45, 10, 85, 50), start=9)) is not None
    assert [c.tracks for c in cases.candidates] == [[1, 2], [3]]
    assert cases.summary() == {"unauthorized_ad": 2}


def test_candidate_ids_are_deterministic(tmp_path: Path) -> None:
    a = builder(tmp_path / "a").add(*fire(7, "cable_clutter"))
    b = builder(tmp_path / "b").add(*fire(7, "cable_clutter"))
    other = builder(tmp_path / "c").add(*fire(8, "cable_clutter"))
    assert a is not None and b is not None and other is not None
    assert a.id == b.id == str(uuid.uuid5(CASE_NAMESPACE, a.dedup_key)) != other.id
    assert a.dispatch_code == "0408" and a.source.kind == "camera"


def grid_file(tmp_path: Path, properties: dict[str, str]) -> Path:
    path = tmp_path / "grid.geojson"
    ring = [[120.1, 30.2], [120.2, 30.2], [120.2, 30.3], [120.1, 30.3], [120.1, 30.2]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return path


def test_grid_cells_and_distances(tmp_path: Path) -> None:
    grid = GridIndex(grid_file(tmp_path, {"grid_id": "330106001001"}))
    assert grid.cell(30.25, 120.15) == "330106001001"
    assert grid.cell(30.35, 120.15) is None and grid.cell(30.25, 120.25) is None
    case = builder(tmp_path, kind="vehicle", grid=grid).add(*fire(1, "ground_lock", lat=30.25))
    assert case is not None and case.grid_cell == "330106001001"
    with pytest.raises(GridError, match=r"features\[0\]"):
        GridIndex(grid_file(tmp_path, {"name": "no id"}))
    assert distance_m(Place(lat=30.0, lon=120.0), Place(lat=30.001, lon=120.0)) == \
        pytest.approx(111.2, abs=0.5)


def test_a_frame_with_several_cases_is_encoded_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    encodes: list[int] = []
    real = cv2.imencode

    def counted(*args: Any, **kwargs: Any) -> Any:
        encodes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cv2, "imencode", counted)
    frame = np.full((48, 64, 3), 90, np.uint8)
    first, again = store.put(frame, "frame"), store.put(frame, "frame")
    assert first == again and len(encodes) == 1
    # an equal image that is another object is encoded (the same file results)
    assert store.put(frame.copy(), "frame").sha256 == first.sha256 and len(encodes) == 2
