"""The plain types that flow through inference: frames in, detections out.

Field names follow supervision's ``Detections`` (``xyxy``, ``confidence``, ``class_id``,
``tracker_id``) so the two convert without renaming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

BGRImage = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Location:
    """Where a frame was taken (WGS84), with the vehicle's heading and speed when known."""

    lat: float
    lon: float
    heading: float | None = None
    speed_mps: float | None = None


@dataclass(frozen=True)
class Frame:
    """One image from a source, with its time (UTC) and, when known, its place.

    ``original`` is the JPEG file the image was decoded from, when the image is that file's
    picture exactly as stored (a photo, not turned by its EXIF orientation): its evidence is
    then the file's own bytes, unaltered and with the upload's sha256, rather than the
    pixels encoded again.
    """

    source_id: str
    index: int
    captured_at: datetime
    image: BGRImage
    location: Location | None = None
    original: Path | None = None


@dataclass(frozen=True)
class Detections:
    """Boxes found in one image, in that image's pixels.

    Attributes:
        xyxy: (N, 4) float32 corners.
        confidence: (N,) float32 scores in 0..1.
        class_id: (N,) int64 taxonomy ids.
        tracker_id: (N,) int64 track ids once tracked, else None.
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]
    tracker_id: npt.NDArray[np.int64] | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.confidence.shape != (n,) \
                or self.class_id.shape != (n,):
            raise ValueError(f"inconsistent detection arrays: xyxy {self.xyxy.shape}, "
                             f"confidence {self.confidence.shape}, class_id {self.class_id.shape}")
        if self.tracker_id is not None and self.tracker_id.shape != (n,):
            raise ValueError(f"tracker_id shape {self.tracker_id.shape} != ({n},)")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer]) -> Detections:
        """The detections selected by a boolean mask or an index array."""
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index],
                          None if self.tracker_id is None else self.tracker_id[index])
