"""Is the synthetic data learnable, and not trivial? Train yolo11n from its YAML on generated
images and score it on images of a seed never used in training.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/synth_learnability.py --out runs/learnability

It runs what a user runs: ``streetwatch data synth`` for the three sets (train seed 1000,
validation seed 2000, held-out test seed 3000), ``streetwatch train`` with a recipe
(``--config``, default the default model's ``street``) and ``streetwatch eval`` of the best
weights on the held-out set. It prints the training time and the per-class precision,
recall, AP50 and AP50-95, and writes them to OUT/result.json. Needs the `train` extra.
Nothing is downloaded: the model is built from ultralytics' yolo11n.yaml. Re-running
resumes an unfinished run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

TRAIN_SEED, VAL_SEED, TEST_SEED = 1000, 2000, 3000


def _sw(*args: str | Path | int) -> str:
    from streetwatch.service.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"streetwatch {' '.join(map(str, args))} failed:\n{result.output}")
    return result.output


def _dataset(path: Path, images: int, seed: int, split: str, size: str) -> None:
    if (path / "manifest.jsonl").exists():
        return
    started = time.perf_counter()
    _sw("data", "synth", "--out", path, "--images", images, "--seed", seed, "--size", size,
        "--split", split)
    print(f"generated {images} images (seed {seed}) in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/learnability"))
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--test-images", type=int, default=300)
    parser.add_argument("--config", default="street", help="training recipe (name or YAML)")
    parser.add_argument("--imgsz", type=int, help="override the recipe's image size")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--size", default="960x540", help="generated image size")
    parser.add_argument("--model", default="yolo11n.yaml",
                        help="model YAML to train from scratch, or a local .pt to continue from")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    out = args.out.resolve()
    _dataset(out / "train", args.train_images, TRAIN_SEED, "train", args.size)
    _dataset(out / "val", args.val_images, VAL_SEED, "val", args.size)
    _dataset(out / "test", args.test_images, TEST_SEED, "test", args.size)

    run = out / "run"
    overrides: list[str | Path] = ["--model", args.model]
    for flag, value in (("--imgsz", args.imgsz), ("--epochs", args.epochs)):
        if value is not None:
            overrides += [flag, str(value)]
    resume = ["--resume"] if (run / "weights" / "last.pt").exists() else []
    started = time.perf_counter()
    print(_sw("train", "--config", args.config, "--data", out / "train", "--data", out / "val",
              "--holdout", out / "test", *overrides, "--out", run, *resume).strip())
    wall = time.perf_counter() - started
    record = json.loads((run / "result.json").read_text(encoding="utf-8"))
    print(_sw("eval", "--model", run / "weights" / "best.pt", "--data", out / "test",
              "--out", out / "eval").strip())
    metrics = json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))
    run_record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    result = {
        "config": run_record["config"], "precision": run_record.get("precision"),
        "train_images": args.train_images, "image_size": args.size,
        "epochs": record["epochs"], "train_seconds": round(record["seconds"]),
        "seconds_per_epoch": round(record["seconds_per_epoch"]),
        "wall_seconds_this_call": round(wall),
        "test": {"seed": TEST_SEED, "images": args.test_images},
        "all": metrics["all"], "classes": metrics["classes"],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"trained {record['epochs']} epochs on {args.train_images} images in "
          f"{record['seconds'] / 60:.1f} min ({record['seconds_per_epoch']:.0f} s/epoch); "
          f"held-out mAP50 {metrics['all']['ap50']:.3f}")


if __name__ == "__main__":
    main()
