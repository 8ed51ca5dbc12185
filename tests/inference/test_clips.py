"""Evidence clips: the seconds before a track's last sighting, with its box, as WebM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from streetwatch.inference.clips import ClipRecorder
from streetwatch.inference.tracking import Observation, Track
from streetwatch.inference.types import Frame
from streetwatch.models.taxonomy import TAXONOMY

T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)
LOCK = TAXONOMY.by_key("ground_lock")


def frame(k: int, fps: float = 2.0) -> Frame:
    return Frame("cam", k, T0 + timedelta(seconds=k / fps), np.full((360, 1280, 3), 90,
                                                                     np.uint8))


def decoded(data: bytes, tmp_path: Path) -> list[np.ndarray]:
    (tmp_path / "c.webm").write_bytes(data)
    capture, images = cv2.VideoCapture(str(tmp_path / "c.webm")), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    return images


def test_a_clip_shows_the_seconds_before_the_last_sighting_with_the_box(tmp_path: Path) -> None:
    recorder = ClipRecorder(3, fps=2, width=640)
    for k in range(40):  # 20 s of footage
        recorder.see(frame(k))
    box = np.array([600, 100, 700, 200], np.float32)
    track = Track(1, [Observation(frame(k).captured_at, box, 0.9, LOCK.id) for k in (36, 38)])
    data = recorder.clip(track, "ground_lock")
    assert data is not None
    images = decoded(data, tmp_path)
    assert len(images) == 7  # 16 s .. 19 s at 2 fps, the ends included
    assert images[0].shape == (180, 640, 3)  # scaled down to the recorder's width
    edge = (slice(46, 54), slice(300, 350))  # the box's top edge, at half scale
    for seen, k in ((True, 36), (False, 37), (True, 38)):
        change = np.abs(images[k - 32][edge].astype(int) - images[1][edge].astype(int))
        assert bool(change.max() > 60) is seen, k


def test_a_recorder_keeps_only_what_a_clip_can_need() -> None:
    recorder = ClipRecorder(3, fps=2, width=640, lag_s=4)
    for k in range(400):
        recorder.see(frame(k))
    assert len(recorder._frames) <= 15  # 7 s at 2 fps, however long the stream ran


def test_a_track_seen_in_one_frame_has_no_clip() -> None:
    recorder = ClipRecorder(3, fps=2)
    recorder.see(frame(0))
    track = Track(1, [Observation(T0, np.array([0, 0, 9, 9], np.float32), 0.9, LOCK.id)])
    assert recorder.clip(track, "ground_lock") is None
    with pytest.raises(ValueError, match="positive"):
        ClipRecorder(0, fps=2)
