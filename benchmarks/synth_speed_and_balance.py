"""How fast the synthetic generator is, and how balanced its classes are, measured in one run.

    .venv/bin/python benchmarks/synth_speed_and_balance.py [--images 500] [--size 1280x720]

Generates a `mixed` set with all cores, end to end (render, JPEG, write), and prints:
images per second; for each class the share of images holding it (target: at least 20 %)
and its share of all boxes (target: at most 40 %, vehicle excepted); the share of images
without any violation (target: about 15 %).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from streetwatch.datasets.format import Dataset
from streetwatch.datasets.synth.dataset import write_synth_dataset
from streetwatch.models.taxonomy import TAXONOMY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        started = time.perf_counter()
        write_synth_dataset(out, images=args.images, seed=args.seed, size=(width, height),
                            workers=args.workers)
        elapsed = time.perf_counter() - started
        dataset = Dataset.open(out)
        presence: Counter[str] = Counter()
        boxes: Counter[str] = Counter()
        no_violation = 0
        for _, labels in dataset.iter_labels():
            keys = [TAXONOMY.by_id(int(c)).key for c in labels.class_id]
            boxes.update(keys)
            presence.update(set(keys))
            no_violation += not any(TAXONOMY.by_key(k).can_be_case for k in keys)

    count = len(dataset.records)
    total = sum(boxes.values())
    print(f"{count} images at {width}x{height} with {args.workers} workers in {elapsed:.1f} s: "
          f"{count / elapsed:.1f} images/s")
    print(f"{'class':<16} {'in images':>10} {'of boxes':>9}")
    for key in TAXONOMY.keys:
        print(f"{key:<16} {presence[key] / count:>9.0%} {boxes[key] / total:>9.0%}")
    print(f"images without a violation: {no_violation / count:.0%}")


if __name__ == "__main__":
    main()
