"""The inference issue's acceptance figures, on generated videos with known truth.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/video_acceptance.py [--model NAME:VERSION|M.onnx]
    .venv/bin/python benchmarks/video_acceptance.py --replay     # a perfect detector

1. CCTV (10 minutes at 1 fps, 1280x720): the parked car must give exactly one
   ``illegal_parking`` candidate with first_seen within 2 s of the truth, the short stop
   none, the vendor exactly one ``street_vending`` candidate. A candidate belongs to the
   event whose object its box lies on.
2. Dashcam drive (GPS track, sampled at --drive-fps): the share of the truth's violating
   objects found by a candidate of their class within 15 m, and objects that got two.

With ``--replay`` the truth's own boxes stand in for the detector (``inference/replay.py``):
the figures then judge tracking, rules and the case builder alone, and what a model scores
below them is the detector's share. Prints the figures and writes OUT/acceptance.json.
Uses the promoted model by default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from streetwatch.inference.camera import load_camera
from streetwatch.inference.cases import CaseCandidate
from streetwatch.inference.gps import read_track
from streetwatch.inference.replay import replay_cases, score_cctv, score_drive
from streetwatch.inference.rules import DEFAULT_FPS_MOVING


def sw(*args: str | Path | float) -> None:
    command = [str(Path(sys.executable).with_name("streetwatch")), *map(str, args)]
    subprocess.run(command, check=True)


def candidates(out: Path) -> list[CaseCandidate]:
    return [CaseCandidate.model_validate_json(line)
            for line in (out / "candidates.jsonl").read_text().splitlines()]


def cctv(work: Path, model: list[str] | None, seed: int) -> dict[str, Any]:
    clip = work / f"cctv-{seed}"
    if not (clip / "truth.json").exists():
        sw("data", "synth-video", "--out", clip, "--kind", "cctv", "--seconds", "600", "--fps",
           "1", "--size", "1280x720", "--seed", seed, "--force")
    truth = json.loads((clip / "truth.json").read_text())
    if model is None:
        with tempfile.TemporaryDirectory() as evidence:
            found = replay_cases(clip / "video.mp4", truth, Path(evidence), fps=1,
                                 camera=load_camera(clip / "camera.yaml"))
    else:
        out = work / f"cctv-{seed}-detect"
        sw("detect", clip / "video.mp4", "--camera", clip / "camera.yaml", "--fps", "1",
           "--start", truth["start_utc"].replace("Z", "+0000"), "--out", out, "--force",
           *model)
        found = candidates(out)
    return score_cctv(truth, found)


def dashcam(work: Path, model: list[str] | None, seed: int, seconds: float,
            fps: float) -> dict[str, Any]:
    clip = work / f"drive-{seed}"
    if not (clip / "truth.json").exists():
        sw("data", "synth-video", "--out", clip, "--kind", "dashcam", "--seconds", seconds,
           "--size", "1280x720", "--seed", seed, "--force")
    truth = json.loads((clip / "truth.json").read_text())
    if model is None:
        with tempfile.TemporaryDirectory() as evidence:
            found = replay_cases(clip / "video.mp4", truth, Path(evidence), fps=fps,
                                 track=read_track(clip / "track.gpx"))
    else:
        out = work / f"drive-{seed}-detect"
        sw("detect", clip / "video.mp4", "--gps", clip / "track.gpx", "--vehicle", "synth",
           "--fps", fps, "--out", out, "--force", *model)
        found = candidates(out)
    return {"fps": fps, **score_drive(truth, found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NAME:VERSION[/int8] or an .onnx (default: promoted)")
    parser.add_argument("--out", type=Path, default=Path("runs/acceptance"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drive-seconds", type=float, default=30)
    parser.add_argument("--drive-fps", type=float, default=DEFAULT_FPS_MOVING,
                        help="dashcam sampling rate [default: streetwatch detect's]")
    parser.add_argument("--replay", action="store_true",
                        help="replay the truth's boxes instead of running a model")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = None if args.replay else (["--model", args.model] if args.model else [])
    result = {"detector": "truth replay" if args.replay else (args.model or "promoted"),
              "cctv": cctv(args.out, model, args.seed),
              "dashcam": dashcam(args.out, model, args.seed, args.drive_seconds,
                                 args.drive_fps)}
    (args.out / "acceptance.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
