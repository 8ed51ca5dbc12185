"""YOLO label files: one ``class cx cy w h`` line per box, coordinates normalised to 0..1."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt


class LabelFileError(ValueError):
    """A label file line that cannot be read; the message names file and line."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = Path(path)
        self.line = line
        self.reason = reason


def parse_label_line(text: str) -> tuple[int, tuple[float, float, float, float]]:
    """Parse one label line into a class id and ``(cx, cy, w, h)``.

    Only the syntax is checked here (five fields, an integer class, numeric coordinates);
    ranges are the caller's business, so a validator can report them separately.

    Raises:
        ValueError: saying what is wrong with the line.
    """
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields 'class cx cy w h', got {len(fields)}")
    try:
        class_id = int(fields[0])
    except ValueError:
        raise ValueError(f"class id {fields[0]!r} is not an integer") from None
    try:
        cx, cy, w, h = (float(value) for value in fields[1:])
    except ValueError:
        raise ValueError(f"coordinates {' '.join(fields[1:])!r} are not all numbers") from None
    return class_id, (cx, cy, w, h)


@dataclass
class Labels:
    """The boxes of one image.

    Attributes:
        class_id: (N,) int64 class ids.
        xywhn: (N, 4) float64 boxes as centre x, centre y, width, height, normalised 0..1.
    """

    class_id: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    xywhn: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))

    def __post_init__(self) -> None:
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        self.xywhn = np.asarray(self.xywhn, dtype=np.float64).reshape(-1, 4)
        if len(self.class_id) != len(self.xywhn):
            raise ValueError(
                f"class_id has {len(self.class_id)} entries but xywhn has {len(self.xywhn)} rows"
            )

    def __len__(self) -> int:
        return len(self.class_id)

    @classmethod
    def from_arrays(cls, class_id: npt.ArrayLike, xywhn: npt.ArrayLike) -> Labels:
        """Build labels from anything array-like: ``(N,)`` ids and ``(N, 4)`` boxes."""
        return cls(np.asarray(class_id, dtype=np.int64), np.asarray(xywhn, dtype=np.float64))

    @classmethod
    def from_xyxy_pixels(
        cls,
        class_id: npt.ArrayLike,
        xyxy: npt.ArrayLike,
        width: int,
        height: int,
    ) -> Labels:
        """Build labels from (N, 4) pixel corner boxes in an image of ``width`` x ``height``."""
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        x1, y1, x2, y2 = boxes.T
        xywhn = np.stack(
            [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height],
            axis=1,
        )
        return cls(np.asarray(class_id, dtype=np.int64), xywhn)

    def xyxy_pixels(self, width: int, height: int) -> npt.NDArray[np.float64]:
        """(N, 4) corner boxes in pixels."""
        cx, cy, w, h = self.xywhn.T
        half_w, half_h = w / 2, h / 2
        return np.stack(
            [(cx - half_w) * width, (cy - half_h) * height,
             (cx + half_w) * width, (cy + half_h) * height],
            axis=1,
        )

    def to_text(self) -> str:
        """The label file's text; empty for an image without boxes."""
        lines = [
            f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}"
            for c, (x, y, w, h) in zip(self.class_id, self.xywhn, strict=True)
        ]
        return "".join(line + "\n" for line in lines)


def read_labels(path: Path) -> Labels:
    """Read a label file strictly: any malformed or non-finite line is an error.

    A missing file means an image without boxes (YOLO's convention) and gives empty labels.

    Raises:
        LabelFileError: naming the file and line.
    """
    if not path.exists():
        return Labels()
    class_ids: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            class_id, box = parse_label_line(text)
        except ValueError as exc:
            raise LabelFileError(path, number, str(exc)) from None
        if not all(math.isfinite(v) for v in box):
            raise LabelFileError(path, number, "non-finite coordinate")
        class_ids.append(class_id)
        boxes.append(box)
    return Labels(np.array(class_ids, dtype=np.int64), np.array(boxes, dtype=np.float64))
