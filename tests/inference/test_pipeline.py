"""The pipeline from a moving camera: a violation becomes a case when its track is over,
placed where its sightings' rays cross (else where the vehicle was at the last sighting);
a stream stopped by hand keeps them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from streetwatch.inference.cases import (
    CaseBuilder,
    EvidenceStore,
    ModelRef,
    Place,
    Source,
    distance_m,
)
from streetwatch.inference.pipeline import run
from streetwatch.inference.replay import Box, ReplayDetector
from streetwatch.inference.rules import RuleEngine
from streetwatch.inference.types import Frame, Location

Recorded = dict[float, list[tuple[str, Box]]]
T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)
FPS = 5.0
IMAGE = np.zeros((180, 320, 3), np.uint8)


def _drive(seconds: float, heading: float | None = None) -> Iterator[Frame]:
    """Frames from a vehicle heading north at about 8 m/s (1.6 m a frame)."""
    for k in range(int(seconds * FPS)):
        yield Frame("patrol", k, T0 + timedelta(seconds=k / FPS), IMAGE,
                    Location(30.0 + k * 1.6 / 111_000, 120.0, heading=heading))


def _lock_passing(first: int, count: int) -> Recorded:
    """A ground lock growing and sweeping right for ``count`` frames from frame ``first``,
    several box widths a frame, so box overlap alone would lose it."""
    boxes: Recorded = {}
    for step in range(count):
        x, size = 170.0 + 30 * step, 8.0 + 3 * step
        boxes[(first + step) / FPS] = [("ground_lock", (x, 120, x + size, 120 + size))]
    return boxes


def _run(frames: Iterator[Frame], boxes: Recorded,
         tmp_path: Path) -> CaseBuilder:
    replay = ReplayDetector(T0, boxes)
    builder = CaseBuilder(EvidenceStore(tmp_path), ModelRef(name="m", version="1",
                                                            sha256=None),
                          Source(kind="vehicle", id="patrol"))
    run(replay.watch(frames), replay, RuleEngine(), builder, fps=FPS)
    return builder


def _poster_ahead(east_m: float, north_m: float, hfov: float = 85.0) -> Recorded:
    """Where a pinhole camera of ``hfov`` on the vehicle of ``_drive`` sees a poster standing
    east and north of the drive's start, frame by frame while it is in view."""
    focal = (IMAGE.shape[1] / 2) / math.tan(math.radians(hfov) / 2)
    boxes: Recorded = {}
    for k in range(int(north_m / 1.6)):
        u = IMAGE.shape[1] / 2 + focal * east_m / (north_m - 1.6 * k)
        if u + 6 < IMAGE.shape[1]:
            boxes[k / FPS] = [("unauthorized_ad", (u - 6, 60, u + 6, 76))]
    return boxes


def test_a_passing_violation_is_one_case_placed_at_its_last_sighting(tmp_path: Path) -> None:
    """Without a heading the rays are unknown: the case is where the vehicle was last."""
    builder = _run(_drive(8), _lock_passing(first=5, count=4), tmp_path)
    (case,) = builder.candidates
    assert case.category == "ground_lock" and case.rule == "confirmed in 2 frames"
    assert case.first_seen == T0 + timedelta(seconds=1.0)
    assert case.last_seen == T0 + timedelta(seconds=1.6)
    assert case.location is not None
    assert case.location.lat == pytest.approx(30.0 + 8 * 1.6 / 111_000)  # frame 8, the last


def test_a_poster_is_placed_where_it_stands_not_where_the_car_was(tmp_path: Path) -> None:
    truth = Place(lat=30.0 + 25 / 111_000, lon=120.0 + 4 / (111_000 * math.cos(math.radians(30))))
    builder = _run(_drive(6, heading=0.0), _poster_ahead(east_m=4, north_m=25), tmp_path)
    (case,) = builder.candidates
    assert case.location is not None and case.places == [case.location]
    assert distance_m(case.location, truth) < 1.5
    last_fix = 30.0 + 1.6 * max(int(k * FPS) for k in _poster_ahead(4, 25)) / 111_000
    assert distance_m(Place(lat=last_fix, lon=120.0), truth) > 5  # 7 m: the last fix


def test_a_violation_seen_once_is_not_confirmed(tmp_path: Path) -> None:
    assert _run(_drive(8), _lock_passing(first=5, count=1), tmp_path).candidates == []


def test_a_car_seen_as_a_vehicle_from_afar_is_a_case_as_what_it_shows_near(
        tmp_path: Path) -> None:
    """Far off, a car on the pavement looks like any lawful car; only near does it show
    where it stands. Most of its sightings say ``vehicle``, two near ones say
    ``illegal_parking``: one case, shown by its illegal-parking sighting."""
    boxes: Recorded = {}
    for step in range(10):
        x, size = 150.0 + 4 * step, 10.0 + 3 * step
        boxes[(5 + step) / FPS] = [("vehicle" if step < 8 else "illegal_parking",
                                    (x, 100, x + size, 100 + size / 2))]
    builder = _run(_drive(4), boxes, tmp_path)
    (case,) = builder.candidates
    assert case.category == case.detected == "illegal_parking"
    assert case.first_seen == T0 + timedelta(seconds=1.0)  # the track's whole pass
    assert case.box == boxes[13 / FPS][0][1]  # the first illegal-parking sighting
    assert _run(_drive(4), {t: [("vehicle", box)] for t, [(_, box)] in boxes.items()},
                tmp_path).candidates == []


def test_a_stream_stopped_by_hand_keeps_the_violations_in_view(tmp_path: Path) -> None:
    def stopped_at(frames: Iterator[Frame], k: int) -> Iterator[Frame]:
        for frame in frames:
            if frame.index == k:
                raise KeyboardInterrupt
            yield frame

    replay = ReplayDetector(T0, _lock_passing(first=5, count=10))
    builder = CaseBuilder(EvidenceStore(tmp_path), ModelRef(name="m", version="1",
                                                            sha256=None),
                          Source(kind="vehicle", id="patrol"))
    with pytest.raises(KeyboardInterrupt):
        run(replay.watch(stopped_at(_drive(20), 9)), replay, RuleEngine(), builder, fps=FPS,
            ahead=0)
    (case,) = builder.candidates  # still in view when stopped, and confirmed: kept
    assert case.last_seen == T0 + timedelta(seconds=1.6)
