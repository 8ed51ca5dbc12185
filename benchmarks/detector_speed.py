"""How fast is the detector, and what does our wrapping cost? All ratios come from one run,
with the contenders interleaved round by round so that they share the machine's load.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/detector_speed.py [--imgsz 640]
        [--model M.onnx [--int8 M.int8.onnx] [--pt M.pt]] [--seconds 12] [--rounds 40]

Prints, per frame at the model's image size:
1. bare ``session.run`` on a ready tensor of the detector's input shape vs ``Detector``
   from a decoded BGR frame to ``Detections`` (letterbox + run + NMS + rescale): the
   overhead ratio (target <= 1.10); and bare on a square input, which rectangular
   letterboxing avoids;
2. ultralytics ``predict`` on the same .onnx and .pt (needs the train extra), in a group of
   its own: torch's thread pool spins after each call and would slow the others;
3. a 1080p 25 fps dashcam clip sampled at 5 fps (the target's rate) and at 10 (``detect``'s
   default for moving cameras) through ``streetwatch detect``'s pipeline (decode + detect +
   track + rules): times faster than real time, FP32 and INT8;
4. frames of 4 cameras batched into one call vs one call per frame.

Without ``--model``, yolo11n is built from its YAML and exported (untrained weights cost
the same time as trained ones). Needs the ``train`` extra for that and for (2).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from streetwatch.inference.cases import CaseBuilder, EvidenceStore, ModelRef, Source
from streetwatch.inference.detector import Detector, DetectorConfig, letterbox, to_tensor
from streetwatch.inference.pipeline import run
from streetwatch.inference.rules import DEFAULT_FPS_MOVING, RuleEngine
from streetwatch.inference.sources import VideoSource
from streetwatch.inference.tracking import Tracker, TrackerConfig

TARGET_FPS = 5.0  # the inference issue's dashcam figure: at least 3x real time at 5 fps


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int,
                settle_s: float = 0.25) -> dict[str, list[float]]:
    """Seconds of each call of each contender, round by round, alternating them. The order
    turns by one each round, and each call starts ``settle_s`` after the last one ended:
    thread pools spin for a while after a call (onnxruntime's, and the OpenMP threads of
    the torch operations in ultralytics' pre- and post-processing), which
    slowed whichever call came next (with a fixed order and no pause, ultralytics' spinning
    made the bare ``session.run`` that followed it 1.6x slower than our whole detector)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():
        call()  # warm up
    order = list(contenders.items())
    for k in range(rounds):
        for name, call in order[k % len(order):] + order[:k % len(order)]:
            time.sleep(settle_s)
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return times


def report(title: str, times: dict[str, list[float]], unit: str, rounds: int) -> None:
    """Each contender's median time and its ratio to ``unit``'s: the ratio of the medians,
    and the median of the ratios within a round (calls a few hundred milliseconds apart,
    so a change in the machine's load between rounds cancels out), with the share of
    rounds in which the contender was the faster."""
    print(f"{title}, median of {rounds} interleaved rounds (ratio of medians; median of "
          "ratios within a round; rounds faster):")
    base = statistics.median(times[unit])
    for name, values in times.items():
        paired = [a / b for a, b in zip(values, times[unit], strict=True)]
        faster = sum(a < b for a, b in zip(values, times[unit], strict=True))
        print(f"  {name:<38} {statistics.median(values) * 1000:7.1f} ms  "
              f"{statistics.median(values) / base:5.2f}x  {statistics.median(paired):5.2f}x "
              f"{unit}" + ("" if name == unit else f"  ({faster}/{len(values)} faster)"))


def build_model(work: Path, imgsz: int) -> tuple[Path, Path]:
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics.models import YOLO

    from streetwatch.models.taxonomy import TAXONOMY

    model = YOLO("yolo11n.yaml")
    model.model.names = TAXONOMY.names  # type: ignore[union-attr]
    pt = work / "yolo11n.pt"
    model.save(str(pt))
    onnx = Path(YOLO(str(pt)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=True,
                                     device="cpu", verbose=False))
    return pt, onnx


def street_frame(width: int = 1920, height: int = 1080) -> np.ndarray:
    from streetwatch.datasets.synth.generate import generate_image

    return generate_image(7, "dashcam", (width, height)).image


def dashcam_clip(path: Path, seconds: float) -> Path:
    frame = street_frame()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, (1920, 1080))
    for i in range(int(seconds * 25)):
        shifted = np.roll(frame, i * 4, axis=1)  # motion, so the encoder has work
        writer.write(shifted)
    writer.release()
    return path


def video_figures(work: Path, seconds: float, models: dict[str, Path | None],
                  rates: list[float]) -> None:
    """Times faster than real time of a generated 1080p 25 fps dashcam clip sampled at
    each of ``rates`` frames per second, through the pipeline of ``streetwatch detect``,
    for each model given."""
    clip = dashcam_clip(work / "drive.mp4", seconds)
    frame = street_frame()
    for (label, model_path), fps in itertools.product(models.items(), rates):
        if model_path is None:
            continue
        # as `streetwatch detect` runs it: not spinning, the reader thread shares the cores
        video_detector = Detector.open(model_path, config=DetectorConfig(conf=0.25, spin=False))
        # once per process, not per second of video: the tracker's import of
        # supervision (about 1 s) and the session's first run; timed apart
        started = time.perf_counter()
        Tracker(TrackerConfig(fps=fps))
        video_detector([frame])
        startup = time.perf_counter() - started
        builder = CaseBuilder(EvidenceStore(work / "evidence"),
                              ModelRef(name="bench", version="0", sha256=None),
                              Source(kind="vehicle", id="bench"))
        source = VideoSource(clip, fps=fps, start=datetime(2026, 5, 1, tzinfo=UTC))
        started = time.perf_counter()
        stats = run(source, video_detector, RuleEngine(), builder, fps=fps)
        elapsed = time.perf_counter() - started
        print(f"1080p 25 fps dashcam clip of {seconds:g} s sampled at {fps:g} fps ({label}, "
              f"{stats.frames} frames): {seconds / elapsed:.2f}x real time "
              f"(plus {startup:.1f} s start-up once per process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported .onnx (default: build one)")
    parser.add_argument("--int8", type=Path, help="its INT8 version, for the video figure")
    parser.add_argument("--pt", type=Path, help="the .pt it was exported from, for "
                                                "ultralytics' .pt figure")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0, help="dashcam clip length")
    parser.add_argument("--video-fps", type=float, nargs="+",
                        default=sorted({TARGET_FPS, DEFAULT_FPS_MOVING}),
                        help="sampling rates of the dashcam figure [default: the inference "
                             "issue's 5, and streetwatch detect's]")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        work = Path(tmp)
        pt = args.pt
        onnx = args.model
        if onnx is None:
            pt, onnx = build_model(work, args.imgsz)
        detector = Detector.open(onnx, config=DetectorConfig(conf=0.25))
        imgsz = detector.info.imgsz
        frame = street_frame()
        rect = to_tensor([letterbox(frame, imgsz, detector.info.stride)[0]])
        square = to_tensor([letterbox(frame, imgsz)[0]])
        session = detector._session  # the very session the detector uses
        ours = "Detector (BGR frame -> Detections)"
        contenders: dict[str, Callable[[], object]] = {
            "bare session.run": lambda: session.run(None, {"images": rect}),
            ours: lambda: detector([frame]),
            "bare session.run, square input": lambda: session.run(None, {"images": square}),
        }
        report(f"1080p frame, {imgsz} px ({rect.shape[3]}x{rect.shape[2]} input), "
               f"{detector.config.threads or os.cpu_count()} threads",
               interleaved(contenders, args.rounds), "bare session.run", args.rounds)
        # ultralytics in a group of its own, so that the overhead ratio above never
        # shares the machine with torch's thread pool
        try:
            os.environ["YOLO_OFFLINE"] = "1"
            from ultralytics.models import YOLO

            onnx_yolo = YOLO(str(onnx), task="detect")
            rivals: dict[str, Callable[[], object]] = {
                ours: contenders[ours],
                "ultralytics predict .onnx": lambda: onnx_yolo.predict(
                    frame, imgsz=imgsz, device="cpu", verbose=False)}
            if pt is not None:
                pt_yolo = YOLO(str(pt))
                rivals["ultralytics predict .pt"] = lambda: pt_yolo.predict(
                    frame, imgsz=imgsz, device="cpu", verbose=False)
            report("against ultralytics on the same frame", interleaved(rivals, args.rounds),
                   ours, args.rounds)
        except ImportError:
            print("(ultralytics not installed: its figures are skipped)")

        video_figures(work, args.seconds, {"FP32": onnx, "INT8": args.int8}, args.video_fps)

        cameras = [street_frame(1280, 720) for _ in range(4)]
        single = Detector.open(onnx, config=DetectorConfig(batch=1))
        batched = Detector.open(onnx, config=DetectorConfig(batch=4))
        times = interleaved({"one call per frame": lambda: single(cameras),
                             "4 cameras in one call": lambda: batched(cameras)},
                            max(3, args.rounds // 4))
        one, four = (statistics.median(times[k])
                     for k in ("one call per frame", "4 cameras in one call"))
        print(f"4 camera frames: {one * 250:.1f} ms/frame one at a time, {four * 250:.1f} "
              f"ms/frame batched: {one / four:.2f}x throughput")


if __name__ == "__main__":
    main()
