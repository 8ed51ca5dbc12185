"""Test helpers for live things: waiting for background work, and a clip served over HTTP
as a stream (importable through pytest's pythonpath)."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20,
               poll_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


@contextmanager
def served_clip(folder: Path, frames: int) -> Iterator[str]:
    """A 160x120, 10 fps clip of ``frames`` grey frames, served on loopback: its URL."""
    writer = cv2.VideoWriter(str(folder / "live.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), 10,
                             (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), (i * 5) % 256, np.uint8))
    writer.release()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.mp4"
    finally:
        server.shutdown()
