"""`streetwatch detect` on a live HTTP stream: it runs for --duration and keeps what it found."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fixed_onnx import anchor, fixed_model

from streetwatch.models.taxonomy import TAXONOMY


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving a 4 s clip."""
    writer = cv2.VideoWriter(str(tmp_path / "live.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), 10,
                             (160, 120))
    for i in range(40):
        writer.write(np.full((120, 160, 3), i * 5, np.uint8))
    writer.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.mp4"
    finally:
        server.shutdown()


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
