"""What does a model miss on generated images: objects partly hidden, or plain ones?

    .venv/bin/python benchmarks/hidden_recall.py --model M.onnx --data DIR [--data DIR ...]
        [--conf 0.25] [--imgsz N]

Each image of a ``streetwatch data synth`` dataset is made again from the seed its manifest
row records (the generator is deterministic), which gives every label what the dataset does
not keep: how much of the object's silhouette is visible (labels start at 30 %) and what
the object is (a ``stall`` or a ``cart``, a ``lock_arch`` or a ``lock_box``...). The model
runs through ``Detector`` at ``--conf``, and a label counts as found when a same-class box
claims it at IoU >= 0.5 (most confident first, as the evaluation's operating point). Prints
per class the recall in three bands of the visible share and per kind of object.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from streetwatch.datasets.format import Dataset, DatasetError, ImageRecord
from streetwatch.datasets.synth.dataset import GENERATOR_VERSION
from streetwatch.datasets.synth.generate import generate_image
from streetwatch.datasets.synth.render import Label
from streetwatch.inference.boxes import greedy_claims
from streetwatch.inference.detector import Detector, DetectorConfig, ModelError
from streetwatch.inference.types import Detections
from streetwatch.models.taxonomy import TAXONOMY

BANDS = ((0.0, 0.5), (0.5, 0.8), (0.8, 1.01))


def regenerated(dataset: Dataset, record: ImageRecord) -> list[Label]:
    """The generator's labels of one image, made again from its recorded seed; they must
    be the dataset's (class and box to a pixel, in order)."""
    where = f"{dataset.root}/{record.path}"
    if not record.source.startswith(f"synth:v{GENERATOR_VERSION} "):
        raise SystemExit(f"{where}: source {record.source!r} is not this generator's "
                         f"(synth:v{GENERATOR_VERSION})")
    try:
        seed, camera = int(record.meta["image_seed"]), str(record.meta["camera"])
    except (KeyError, ValueError):
        raise SystemExit(f"{where}: no image_seed and camera in its manifest row") from None
    labels = generate_image(seed, camera, (record.width, record.height)).labels
    stored = dataset.labels(record)
    made = np.array([label.xyxy for label in labels], np.float64).reshape(-1, 4)
    if (len(labels) != len(stored) or [TAXONOMY.by_key(label.class_key).id for label in labels]
            != stored.class_id.tolist() or not np.allclose(
                made, stored.xyxy_pixels(record.width, record.height), atol=1.0)):
        raise SystemExit(f"{where}: its labels are not the ones seed {seed} makes: not an "
                         "image this generator makes")
    return labels


def found_flags(labels: list[Label], found: Detections) -> list[bool]:
    """Which labels a same-class box claims at IoU >= 0.5, most confident box first."""
    truth = np.array([label.xyxy for label in labels], np.float64).reshape(-1, 4)
    truth_cls = np.array([TAXONOMY.by_key(label.class_key).id for label in labels])
    claimed = {j for _, j in greedy_claims(found.xyxy, found.confidence, found.class_id,
                                            truth, truth_cls, 0.5)}
    return [j in claimed for j in range(len(labels))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an exported .onnx")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="a dataset made by `streetwatch data synth` (repeatable)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--imgsz", type=int, help="input size [default: the model's]")
    args = parser.parse_args()
    try:
        detector = Detector.open(args.model, config=DetectorConfig(conf=args.conf),
                                 imgsz=args.imgsz)
        datasets = [Dataset.open(root) for root in args.data]
    except (ModelError, DatasetError) as exc:
        parser.error(str(exc))
    # (class, band or kind) -> [found, labels]
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    images = 0
    for dataset in datasets:
        for record in dataset.records:
            image = cv2.imread(str(dataset.image_path(record)))
            if image is None:
                raise SystemExit(f"{dataset.image_path(record)}: not a readable image")
            labels = regenerated(dataset, record)
            found = detector([np.asarray(image, np.uint8)])[0]
            for label, hit in zip(labels, found_flags(labels, found),
                                  strict=True):
                low, high = next(b for b in BANDS if b[0] <= label.visible_fraction < b[1])
                for group in (f"visible {low:.0%}-{min(high, 1):.0%}",
                              f"kind {label.object_kind}"):
                    tally[label.class_key, group][0] += hit
                    tally[label.class_key, group][1] += 1
            images += 1
    print(f"{args.model} at confidence {args.conf}, {images} images of "
          f"{', '.join(map(str, args.data))}")
    for key in TAXONOMY.keys:
        rows = sorted((group, counts) for (k, group), counts in tally.items() if k == key)
        print(key)
        for group, (hits, total) in rows:
            print(f"  {group:<22} {hits:5d} of {total:5d} found, recall {hits / total:.2f}")


if __name__ == "__main__":
    main()
