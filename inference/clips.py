"""Short evidence clips: the last seconds of footage before a violation was judged, with the
object's box drawn where it was seen, so a reviewer sees a car stand still or a stall being
set up rather than one still frame.

The recorder keeps the sampled frames of the last ``seconds`` (plus the few a moving
camera's track may end after its last sighting), downscaled, and encodes a clip as WebM
(VP8): OpenCV's wheels write it without extra codecs and browsers play it.
"""

from __future__ import annotations

import tempfile
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from streetwatch.inference.tracking import Track
from streetwatch.inference.types import BGRImage, Frame
from streetwatch.models.taxonomy import TAXONOMY


class ClipRecorder:
    """Recent frames, to cut clips from.

    Args:
        seconds: How much footage before a track's last sighting a clip shows.
        fps: The rate frames arrive at (the clip plays at it, so in real time).
        width: Frames wider than this are scaled down to it.
        lag_s: How long after its last sighting a track may be judged (a moving camera's
            track is over once lost for 3 s); frames are kept that much longer.
    """

    def __init__(self, seconds: float, *, fps: float, width: int = 640,
                 lag_s: float = 4.0) -> None:
        if seconds <= 0 or fps <= 0:
            raise ValueError("a clip needs positive seconds and fps")
        self.seconds, self.fps, self.width, self.lag_s = seconds, fps, width, lag_s
        self._frames: deque[tuple[datetime, BGRImage, float]] = deque()

    def see(self, frame: Frame) -> None:
        """Keep ``frame`` (downscaled) and forget those too old to be in any clip."""
        h, w = frame.image.shape[:2]
        scale = min(1.0, self.width / w)
        image = frame.image if scale == 1.0 else np.asarray(cv2.resize(
            frame.image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA),
            np.uint8)
        self._frames.append((frame.captured_at, image, scale))
        horizon = frame.captured_at - timedelta(seconds=self.seconds + self.lag_s)
        while self._frames and self._frames[0][0] < horizon:
            self._frames.popleft()

    def clip(self, track: Track, category: str) -> bytes | None:
        """A WebM of the ``seconds`` up to the track's last sighting, its box drawn in the
        frames it was seen in; None when fewer than two frames are at hand."""
        start = track.last_seen - timedelta(seconds=self.seconds)
        chosen = [f for f in self._frames if start <= f[0] <= track.last_seen]
        if len(chosen) < 2:
            return None
        boxes = {o.time: o.xyxy for o in track.observations}
        colour = TAXONOMY.by_key(category).color_bgr
        size = chosen[-1][1].shape[1], chosen[-1][1].shape[0]
        with tempfile.TemporaryDirectory(prefix="sw-clip-") as tmp:
            path = Path(tmp) / "clip.webm"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"VP80"), self.fps, size)
            if not writer.isOpened():
                raise RuntimeError("OpenCV cannot write WebM (VP8) here")
            try:
                for time, image, scale in chosen:
                    out = image if image.shape[1::-1] == size else cv2.resize(image, size)
                    if time in boxes:
                        out = out.copy()
                        x1, y1, x2, y2 = (round(float(v) * scale) for v in boxes[time])
                        cv2.rectangle(out, (x1, y1), (x2, y2), colour,
                                      max(2, round(max(size) / 400)))
                    writer.write(np.ascontiguousarray(out))
            finally:
                writer.release()
            return path.read_bytes()
