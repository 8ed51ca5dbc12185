"""The inference issue's acceptance figures, on generated videos with known truth.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/video_acceptance.py [--model NAME:VERSION|M.onnx]

1. CCTV (10 minutes at 1 fps, 1280x720): the parked car must give exactly one
   ``illegal_parking`` candidate with first_seen within 2 s of the truth, the short stop
   none, the vendor exactly one ``street_vending`` candidate.
2. Dashcam drive (GPS track): the share of the truth's violating objects found by a
   candidate of their class within 15 m, and objects that got two candidates.

Prints the figures and writes OUT/acceptance.json. Uses the promoted model by default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from streetwatch.inference.cases import Place, distance_m


def sw(*args: str | Path | float) -> None:
    command = [str(Path(sys.executable).with_name("streetwatch")), *map(str, args)]
    subprocess.run(command, check=True)


def candidates(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cctv(work: Path, model: list[str], seed: int) -> dict[str, Any]:
    clip = work / f"cctv-{seed}"
    if not (clip / "truth.json").exists():
        sw("data", "synth-video", "--out", clip, "--kind", "cctv", "--seconds", "600", "--fps",
           "1", "--size", "1280x720", "--seed", seed, "--force")
    out = work / f"cctv-{seed}-detect"
    sw("detect", clip / "video.mp4", "--camera", clip / "camera.yaml", "--fps", "1", "--start",
       json.loads((clip / "truth.json").read_text())["start_utc"].replace("Z", "+0000"),
       "--out", out, "--force", *model)
    truth = json.loads((clip / "truth.json").read_text())
    found = candidates(out)
    result: dict[str, Any] = {"candidates": len(found), "events": {}}
    for event in truth["events"]:
        start, end = when(event["start_utc"]), when(event["end_utc"])
        matching = [c for c in found if c["category"] == event["class"]
                    and when(c["first_seen"]) <= end + timedelta(seconds=2)
                    and when(c["last_seen"]) >= start - timedelta(seconds=2)]
        offsets = [round((when(c["first_seen"]) - start).total_seconds(), 1) for c in matching]
        expected = 0 if event["kind"] == "stop" else 1
        result["events"][event["id"]] = {
            "class": event["class"], "expected": expected, "candidates": len(matching),
            "first_seen_offsets_s": offsets,
            "ok": len(matching) == expected and all(abs(o) <= 2 for o in offsets)}
    return result


def dashcam(work: Path, model: list[str], seed: int, seconds: float) -> dict[str, Any]:
    clip = work / f"drive-{seed}"
    if not (clip / "truth.json").exists():
        sw("data", "synth-video", "--out", clip, "--kind", "dashcam", "--seconds", seconds,
           "--size", "1280x720", "--seed", seed, "--force")
    out = work / f"drive-{seed}-detect"
    sw("detect", clip / "video.mp4", "--gps", clip / "track.gpx", "--vehicle", "synth",
       "--fps", "5", "--out", out, "--force", *model)
    truth = json.loads((clip / "truth.json").read_text())
    found = candidates(out)
    targets = [o for o in truth["objects"] if o.get("violation")]
    hits, doubles, errors = 0, 0, []
    for target in targets:
        at = Place(lat=target["wgs84"][0], lon=target["wgs84"][1])
        near = [(distance_m(at, Place(**c["location"])), c) for c in found
                if c["location"] and c["category"] in target["classes"]]
        near = [(d, c) for d, c in near if d <= 15]
        hits += bool(near)
        doubles += len(near) > 1
        errors += [round(min(d for d, _ in near), 1)] if near else []
    return {"violating_objects": len(targets), "found": hits,
            "found_share": round(hits / len(targets), 3) if targets else None,
            "objects_with_two_candidates": doubles, "position_errors_m": errors,
            "candidates": len(found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NAME:VERSION[/int8] or an .onnx (default: promoted)")
    parser.add_argument("--out", type=Path, default=Path("runs/acceptance"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drive-seconds", type=float, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = ["--model", args.model] if args.model else []
    result = {"cctv": cctv(args.out, model, args.seed),
              "dashcam": dashcam(args.out, model, args.seed, args.drive_seconds)}
    (args.out / "acceptance.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
