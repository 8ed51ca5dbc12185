"""`streetwatch detect` on a live HTTP stream: it runs for --duration and keeps what it found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixed_onnx import anchor, fixed_model
from live_helpers import served_clip

from streetwatch.models.taxonomy import TAXONOMY


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A 40-frame clip served over HTTP on loopback: a live stream."""
    with served_clip(tmp_path, frames=40) as url:
        yield url


@pytest.mark.timeout(60)
def test_a_stream_runs_for_its_duration_and_keeps_its_cases(tmp_path: Path, served: str) -> None:
    from streetwatch.service.cli import main

    lock = TAXONOMY.by_key("ground_lock").id
    model = fixed_model(tmp_path / "lock.onnx", [anchor(32, 40, 16, 8, lock, 0.9)])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["detect", served, "--out", str(out), "--model",
                                       str(model), "--fps", "10", "--duration", "1.5"])
    assert result.exit_code == 0, result.output
    lines = (out / "candidates.jsonl").read_text().splitlines()
    cases = [json.loads(line) for line in lines]
    assert [c["category"] for c in cases] == ["ground_lock"]
    assert cases[0]["source"]["kind"] == "upload"
