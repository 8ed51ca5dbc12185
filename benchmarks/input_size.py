"""What does running a model at a larger input size cost? (``STREETWATCH_MODEL_IMGSZ``,
``streetwatch eval --imgsz``: models are exported with dynamic height and width.)

    .venv/bin/python benchmarks/input_size.py --model M.onnx --images DIR
        [--sizes 736 896] [--rounds 5] [--threads 2]

Prints, per size, the median milliseconds an image through ``Detector`` (letterbox + run +
postprocessing, rectangular padding as served) on the first 40 images of DIR, and the ratio
to the first size; the sizes alternate round by round in one run, so they share the
machine's load. What a size gains is measured with ``streetwatch eval --imgsz``.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from detector_speed import interleaved

from streetwatch.inference.detector import Detector, DetectorConfig
from streetwatch.inference.types import BGRImage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an exported .onnx")
    parser.add_argument("--images", type=Path, required=True, help="a folder of images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[736, 896])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:40]
    if not paths:
        parser.error(f"--images {args.images}: no .jpg or .png images")
    images: list[BGRImage] = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            parser.error(f"{path}: not a readable image")
        images.append(np.asarray(image, np.uint8))
    detectors = {size: Detector.open(args.model, config=DetectorConfig(threads=args.threads),
                                     imgsz=size) for size in args.sizes}
    times = interleaved({str(size): partial(detector, images)
                         for size, detector in detectors.items()}, args.rounds)
    per_image = {size: statistics.median(times[str(size)]) / len(images) * 1000
                 for size in args.sizes}
    first = args.sizes[0]
    print(f"{args.model}, {len(images)} images of {args.images}, {args.threads} threads")
    for size, ms in per_image.items():
        print(f"  {size:5d} px: {ms:6.1f} ms an image, {ms / per_image[first]:.2f}x {first} px")


if __name__ == "__main__":
    main()
