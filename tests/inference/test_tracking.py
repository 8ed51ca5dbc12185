"""Tracking over sampled frames: identities, stationary objects, re-linking after occlusion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from streetwatch.inference.tracking import Tracker, TrackerConfig
from streetwatch.inference.types import Detections

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
FPS = 2.0


def boxes(*items: tuple[float, float, float, float, int]) -> Detections:
    if not items:
        return Detections.empty()
    xyxy = np.array([i[:4] for i in items], np.float32)
    return Detections(xyxy, np.full(len(items), 0.9, np.float32),
                      np.array([i[4] for i in items], np.int64))


def at(step: int) -> datetime:
    return T0 + timedelta(seconds=step / FPS)


def test_a_parked_car_is_one_stationary_track() -> None:
    tracker = Tracker(TrackerConfig(fps=FPS, still_window_s=10))
    rng = np.random.default_rng(0)
    ids = set()
    for step in range(60):  # 30 s, the box jitters by a pixel or two
        x, y = 100 + rng.normal(0, 1), 200 + rng.normal(0, 1)
        out = tracker.update(boxes((x, y, x + 80, y + 40, 5)), at(step))
        ids |= set(out.tracker_id.tolist()) if out.tracker_id is not None else set()
    (track,) = tracker.tracks.values()
    assert len(ids) == 1 and track.class_id == 5
    assert track.stationary_since is not None
    assert track.stationary_for(at(59)) >= 25


def test_a_moving_car_is_not_stationary() -> None:
    tracker = Tracker(TrackerConfig(fps=FPS))
    for step in range(40):
        x = 10 + 8 * step
        tracker.update(boxes((x, 200, x + 80, 240, 5)), at(step))
    (track,) = tracker.tracks.values()
    assert track.stationary_since is None


def test_identity_survives_a_long_occlusion() -> None:
    tracker = Tracker(TrackerConfig(fps=FPS, lost_s=2, relink_s=60))
    car = (300, 300, 380, 340, 5)
    for step in range(20):
        tracker.update(boxes(car), at(step))
    for step in range(20, 80):  # 30 s behind a bus: ByteTrack has long given it up
        tracker.update(boxes(), at(step))
    tracker.update(boxes(car), at(80))  # ByteTrack confirms a new track on its 2nd frame
    out = tracker.update(boxes(car), at(81))
    assert out.tracker_id is not None and len(tracker.tracks) == 1
    (track,) = tracker.tracks.values()
    assert int(out.tracker_id[0]) == track.tracker_id
    assert (track.last_seen - track.first_seen).total_seconds() == 40.5


def test_two_objects_keep_two_identities_and_class_votes() -> None:
    tracker = Tracker(TrackerConfig(fps=FPS))
    for step in range(10):
        cls = 1 if step % 3 else 5  # the detector flickers: mostly illegal_parking
        tracker.update(boxes((10, 10, 60, 40, cls), (300, 10, 350, 40, 0)), at(step))
    assert sorted(t.class_id for t in tracker.tracks.values()) == [0, 1]


def test_expired_tracks_are_handed_back() -> None:
    tracker = Tracker(TrackerConfig(fps=FPS, relink_s=5))
    tracker.update(boxes((10, 10, 60, 40, 2)), at(0))
    tracker.update(boxes((10, 10, 60, 40, 2)), at(1))
    assert tracker.expire(at(4)) == []
    (done,) = tracker.expire(at(20))
    assert done.class_id == 2 and tracker.tracks == {}


def _sweep(step: int, x0: float, y0: float) -> tuple[float, float, float, float]:
    """A poster nearing a forward-looking camera: it grows and speeds outwards, moving
    three to five times its own width between sampled frames."""
    scale = 1.25 ** step
    x, y, w = x0 + 60 * (scale - 1) * 3, y0 - 10 * (scale - 1), 16 * scale
    return x, y, x + w, y + 2 * w


def test_from_a_moving_camera_a_box_sweeping_past_keeps_one_identity() -> None:
    """Box overlap cannot follow a poster that moves several widths between frames; the
    motion link can, and two posters side by side keep their own identities."""
    tracker = Tracker(TrackerConfig(fps=5, moving=True))
    seen: dict[str, set[int]] = {"upper": set(), "lower": set()}
    for step in range(5):
        upper, lower = _sweep(step, 700, 250), _sweep(step, 700, 400)
        out = tracker.update(boxes((*upper, 4), (*lower, 4)),
                             T0 + timedelta(seconds=step / 5))
        assert out.tracker_id is not None and len(out) == 2  # none held back
        for k, key in enumerate(("upper", "lower")):
            seen[key].add(int(out.tracker_id[k]))
    assert len(seen["upper"]) == 1 and len(seen["lower"]) == 1
    assert seen["upper"] != seen["lower"]
    assert sorted(len(t.observations) for t in tracker.tracks.values()) == [5, 5]


def test_the_motion_link_needs_the_same_class_and_the_last_frame() -> None:
    tracker = Tracker(TrackerConfig(fps=5, moving=True))
    tracker.update(boxes((*_sweep(0, 700, 250), 4)), T0)
    other = tracker.update(boxes((*_sweep(1, 700, 250), 2)), T0 + timedelta(seconds=0.2))
    later = tracker.update(boxes((*_sweep(2, 700, 250), 2)), T0 + timedelta(seconds=1.0))
    assert other.tracker_id is not None and later.tracker_id is not None
    assert len({*other.tracker_id.tolist(), *later.tracker_id.tolist()}) == 2
    assert len(tracker.tracks) == 3


def test_from_a_fixed_camera_bytetrack_alone_decides() -> None:
    tracker = Tracker(TrackerConfig(fps=5))
    out = [tracker.update(boxes((*_sweep(step, 700, 250), 4)),
                          T0 + timedelta(seconds=step / 5)) for step in range(3)]
    assert [len(o) for o in out] == [1, 0, 0]  # ByteTrack shows a new track on a 2nd overlap


def test_a_moving_camera_track_is_over_once_lost() -> None:  # the view has moved on
    tracker = Tracker(TrackerConfig(fps=5, moving=True, lost_s=3))
    tracker.update(boxes((*_sweep(0, 700, 250), 4)), T0)
    assert tracker.expire(T0 + timedelta(seconds=2.9)) == []
    (over,) = tracker.expire(T0 + timedelta(seconds=3.1))
    assert len(over.observations) == 1 and tracker.tracks == {}


def test_a_long_track_is_thinned_but_keeps_its_best_sighting() -> None:
    from streetwatch.inference.tracking import Observation, Track

    track = Track(1)
    box = np.array([0, 0, 10, 10], np.float32)
    for step, confidence in enumerate([0.5, 0.9, 0.3, 0.4, 0.6, 0.2]):
        track.add(Observation(at(step), box, confidence, 0), keep=4)
    assert len(track.observations) <= 5 and track.observations[0].confidence == 0.5
    assert 0.9 not in [o.confidence for o in track.observations]  # thinned out...
    assert track.best.confidence == 0.9 and track.best.time == at(1)  # ...but remembered
    assert track.last.confidence == 0.2


def test_a_stream_of_passing_cars_keeps_only_live_identities() -> None:
    """A camera runs for weeks: identities of tracks that are over are forgotten."""
    tracker = Tracker(TrackerConfig(fps=FPS, relink_s=5))
    for car in range(40):  # a car every 6 s, each in view for 2 s
        for step in range(4):
            x = 10 + 40 * step
            tracker.update(boxes((x, 100, x + 60, 140, 5)), at(car * 12 + step))
        tracker.expire(at(car * 12 + 4))
    assert len(tracker.tracks) <= 1
    assert len(tracker._alias) <= 2  # the memory this test is about
