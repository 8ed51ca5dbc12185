"""Generate a synthetic streetwatch dataset in parallel, and a contact sheet to judge it by.

Image ``i`` of a run with seed ``S`` is made from the seed sequence ``(S, i)``, so any image
can be regenerated alone and a run is the same whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streetwatch.datasets.format import DatasetWriter, ImageRecord
from streetwatch.datasets.images import ImageInfo, sha256_bytes
from streetwatch.datasets.labels import Labels, read_labels
from streetwatch.datasets.synth.generate import generate_image
from streetwatch.datasets.synth.parallel import ordered_map
from streetwatch.datasets.synth.render import UInt8Image
from streetwatch.models.taxonomy import TAXONOMY

CAMERA_CHOICES = ("dashcam", "cctv", "mixed")
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class SynthJob:
    """One image to make."""

    seed: int
    index: int
    camera: str
    size: tuple[int, int]

    def image_seed(self) -> int:
        """The image's own seed, derived from the run seed and its index."""
        return int(np.random.SeedSequence([self.seed, self.index]).generate_state(1)[0])

    def camera_kind(self) -> str:
        """The camera for this image; ``mixed`` alternates dashcam and CCTV."""
        if self.camera != "mixed":
            return self.camera
        return "dashcam" if self.index % 2 == 0 else "cctv"


@dataclass(frozen=True)
class SynthResult:
    """A made image, encoded, with what the dataset records about it."""

    job: SynthJob
    jpeg: bytes
    labels: Labels
    camera_kind: str
    condition: str


def make(job: SynthJob) -> SynthResult:
    """Generate and JPEG-encode one image (quality varies: compression is part of the look)."""
    image_seed = job.image_seed()
    made = generate_image(image_seed, job.camera_kind(), job.size)
    # A stream of its own: drawn from the image's seed, it would mirror the image's first
    # random choice (its lighting), and dark frames would always be the most compressed.
    quality = int(np.random.default_rng([image_seed, 1]).integers(60, 96))
    ok, encoded = cv2.imencode(".jpg", made.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for synthetic image {job.index}")
    return SynthResult(job, encoded.tobytes(), made.yolo_labels(), made.camera_kind,
                       made.condition)


def write_synth_dataset(
    out: Path,
    *,
    images: int,
    seed: int,
    camera: str = "mixed",
    size: tuple[int, int] = (1280, 720),
    split: str = "train",
    workers: int = 2,
    overwrite: bool = False,
    progress: Callable[[Iterable[SynthResult]], Iterable[SynthResult]] = lambda it: it,
) -> list[ImageRecord]:
    """Write ``images`` generated images as a streetwatch dataset at ``out``.

    Raises:
        ValueError: for an unknown camera choice or a non-positive count or size.
    """
    if camera not in CAMERA_CHOICES:
        raise ValueError(f"--camera {camera!r}: use one of {', '.join(CAMERA_CHOICES)}")
    if images < 1 or size[0] < 32 or size[1] < 32:
        raise ValueError(f"need at least 1 image of at least 32x32 pixels, got {images} of "
                         f"{size[0]}x{size[1]}")
    jobs = [SynthJob(seed, index, camera, size) for index in range(images)]
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for result in progress(ordered_map(make, jobs, workers, chunksize=4)):
            name = f"synth_s{seed}_{result.job.index:06d}.jpg"
            writer.add(
                result.jpeg,
                name=name,
                split=split,
                labels=result.labels,
                source=f"synth:v{GENERATOR_VERSION} seed={seed} index={result.job.index}",
                group=f"synth-s{seed}-{result.job.index}",
                info=ImageInfo(size[0], size[1], sha256_bytes(result.jpeg)),
                meta={"camera": result.camera_kind, "condition": result.condition,
                      "image_seed": str(result.job.image_seed())},
            )
        return list(writer.records)


def draw_labels(image: UInt8Image, labels: Labels) -> UInt8Image:
    """A copy of the image with its boxes and class names drawn in the taxonomy colours."""
    height, width = image.shape[:2]
    canvas = image.copy()
    for class_id, (x1, y1, x2, y2) in zip(labels.class_id, labels.xyxy_pixels(width, height),
                                          strict=True):
        info = TAXONOMY.by_id(int(class_id))
        p, q = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(canvas, p, q, info.color_bgr, max(1, width // 400))
        cv2.putText(canvas, info.key, (p[0], max(12, p[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.4, width / 2400), info.color_bgr, max(1, width // 800), cv2.LINE_AA)
    return canvas


def contact_sheet(samples: list[tuple[UInt8Image, Labels]], columns: int = 4,
                  tile_width: int = 480) -> UInt8Image:
    """Tiles of images with their boxes drawn, ``columns`` wide."""
    tiles = []
    for image, labels in samples:
        drawn = draw_labels(image, labels)
        scale = tile_width / drawn.shape[1]
        tiles.append(cv2.resize(drawn, (tile_width, round(drawn.shape[0] * scale)),
                                interpolation=cv2.INTER_AREA))
    tile_height = max(t.shape[0] for t in tiles)
    blank = np.zeros((tile_height, tile_width, 3), np.uint8)
    padded = [cv2.copyMakeBorder(t, 0, tile_height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT)
              for t in tiles]
    padded += [blank] * (-len(padded) % columns)
    rows = [np.hstack(padded[i:i + columns]) for i in range(0, len(padded), columns)]
    sheet: UInt8Image = np.vstack(rows)
    return sheet


def preview_from_dataset(root: Path, records: list[ImageRecord], out: Path,
                         count: int = 16) -> None:
    """Write a contact sheet of the first ``count`` images of a written dataset."""
    samples = []
    for record in records[:count]:
        image = cv2.imread(str(root / record.path))
        if image is None:
            raise ValueError(f"{root / record.path}: cannot be read for the preview")
        samples.append((np.asarray(image, np.uint8), read_labels(root / record.label_path)))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), contact_sheet(samples))


__all__ = ["CAMERA_CHOICES", "SynthJob", "contact_sheet", "make", "preview_from_dataset",
           "write_synth_dataset"]
