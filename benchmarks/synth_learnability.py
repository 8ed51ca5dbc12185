"""Is the synthetic data learnable, and not trivial? Train yolo11n from its YAML on generated
images and score it on images of a seed never used in training.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/synth_learnability.py --out runs/learnability

Prints the training time and per-class precision, recall, mAP50 and mAP50-95 on the held-out
set, and writes them to OUT/result.json. Needs the `train` extra. Nothing is downloaded: the
model is built from ultralytics' yolo11n.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

TRAIN_SEED, VAL_SEED, TEST_SEED = 1000, 2000, 3000


def _dataset(path: Path, images: int, seed: int, split: str, size: tuple[int, int]) -> None:
    from streetwatch.datasets.synth.dataset import write_synth_dataset

    if (path / "manifest.jsonl").exists():
        return
    started = time.perf_counter()
    write_synth_dataset(path, images=images, seed=seed, split=split, size=size)
    print(f"generated {images} images (seed {seed}) in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/learnability"))
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--test-images", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", default="960x540", help="generated image size")
    parser.add_argument("--model", default="yolo11n.yaml",
                        help="model YAML to train from scratch, or a local .pt to continue from")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    out = args.out.resolve()
    width, height = (int(v) for v in args.size.split("x"))
    _dataset(out / "train", args.train_images, TRAIN_SEED, "train", (width, height))
    _dataset(out / "val", args.val_images, VAL_SEED, "val", (width, height))
    _dataset(out / "test", args.test_images, TEST_SEED, "test", (width, height))

    from streetwatch.models.taxonomy import TAXONOMY

    data_yaml = out / "data.yaml"
    data_yaml.write_text(json.dumps({
        "path": str(out),
        "train": "train/images/train",
        "val": "val/images/val",
        "test": "test/images/test",
        "names": TAXONOMY.names,
    }), encoding="utf-8")

    from ultralytics.models import YOLO

    model = YOLO(args.model)
    started = time.perf_counter()
    model.train(data=str(data_yaml), imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
                device="cpu", workers=2, project=str(out), name="train", exist_ok=True,
                plots=False, seed=0, deterministic=False, verbose=False)
    train_seconds = time.perf_counter() - started
    best = out / "train" / "weights" / "best.pt"
    metrics = YOLO(str(best)).val(data=str(data_yaml), split="test", imgsz=args.imgsz,
                                  batch=args.batch, device="cpu", plots=False,
                                  project=str(out), name="test", exist_ok=True)
    per_class = {}
    for index, class_id in enumerate(metrics.box.ap_class_index):
        precision, recall, ap50, ap = metrics.box.class_result(index)
        per_class[TAXONOMY.by_id(int(class_id)).key] = {
            "precision": round(float(precision), 3), "recall": round(float(recall), 3),
            "ap50": round(float(ap50), 3), "ap50_95": round(float(ap), 3)}
    result = {
        "model": args.model,
        "train_images": args.train_images, "imgsz": args.imgsz, "epochs": args.epochs,
        "train_seconds": round(train_seconds), "map50": round(float(metrics.box.map50), 3),
        "classes": per_class,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"trained {args.epochs} epochs on {args.train_images} images at {args.imgsz} px in "
          f"{train_seconds / 60:.1f} min; held-out mAP50 {result['map50']}")
    for key, values in per_class.items():
        print(f"  {key:<16} " + "  ".join(f"{k} {v:.3f}" for k, v in values.items()))


if __name__ == "__main__":
    main()
