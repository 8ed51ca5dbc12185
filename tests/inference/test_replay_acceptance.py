"""The inference acceptance figures with a perfect detector: a generated video's truth replayed
through the tracker, rules and case builder. Whatever a model scores below these is the
detector's share; these figures are the logic's, and must hold."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from streetwatch.inference.camera import load_camera
from streetwatch.inference.gps import read_track
from streetwatch.inference.replay import replay_cases, score_cctv, score_drive, truth_replay
from streetwatch.inference.rules import DEFAULT_FPS_MOVING
from streetwatch.inference.types import Frame
from streetwatch.service.cli import main


def _generate(out: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["data", "synth-video", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    truth: dict[str, Any] = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    return truth


@pytest.fixture(scope="module")
def cctv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("replay") / "cctv"
    return out, _generate(out, "--kind", "cctv", "--seconds", "600", "--fps", "0.5",
                          "--size", "192x108", "--seed", "0")


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("replay") / "drive"
    return out, _generate(out, "--kind", "dashcam", "--seconds", "10", "--size", "320x180",
                          "--seed", "0")


def test_cctv_parked_car_short_stop_and_vendor(cctv: tuple[Path, dict[str, Any]],
                                               tmp_path: Path) -> None:
    clip, truth = cctv
    found = replay_cases(clip / "video.mp4", truth, tmp_path, fps=0.5,
                         camera=load_camera(clip / "camera.yaml"))
    events = score_cctv(truth, found)["events"]
    assert events["parked-car"]["candidates"] == 1
    assert abs(events["parked-car"]["first_seen_offsets_s"][0]) <= 2
    assert events["short-stop"]["candidates"] == 0
    assert events["vendor"]["candidates"] == 1
    assert all(e["ok"] for e in events.values())
    parked = next(c for c in found if c.category == "illegal_parking")
    assert parked.rule.startswith("illegal_parking stationary")
    assert {e.sha256 for e in parked.evidence} <= {p.stem for p in tmp_path.rglob("*.jpg")}


def test_dashcam_objects_sweeping_past_are_found_once(drive: tuple[Path, dict[str, Any]],
                                                      tmp_path: Path) -> None:
    """Roadside objects cross the frame several box widths per sampled frame; before the
    moving-camera tracker, box overlap lost them and a perfect detector found 2 of 54
    violations on a 30 s drive. Sampled as ``detect`` does (10 fps), each found within
    15 m of where it stands (the case is placed where its sightings' rays cross)."""
    clip, truth = drive
    found = replay_cases(clip / "video.mp4", truth, tmp_path, fps=DEFAULT_FPS_MOVING,
                         track=read_track(clip / "track.gpx"))
    figures = score_drive(truth, found)
    assert figures["violating_objects"] >= 10
    assert figures["found_share"] >= 0.9, figures  # measured 22 of 24 (seed 0, 320x180)
    assert figures["objects_with_two_candidates"] == 0
    assert all(c.rule == "confirmed in 2 frames" and c.location is not None for c in found)


def test_a_replay_answers_each_frame_by_its_time(drive: tuple[Path, dict[str, Any]]) -> None:
    _, truth = drive
    replay = truth_replay(truth)
    labelled = {f["frame"] for o in truth["objects"] for f in o["frames"]}
    frame = min(labelled)
    t = truth["frame_times_s"][frame]
    image = np.zeros((180, 320, 3), np.uint8)
    (seen,) = replay.watch([Frame("drive", frame, replay.start + timedelta(seconds=t), image)])
    (detections,) = replay([seen.image])
    assert len(detections) == sum(1 for o in truth["objects"] for f in o["frames"]
                                  if f["frame"] == frame)
    with pytest.raises(RuntimeError, match="watch"):
        replay([seen.image])
