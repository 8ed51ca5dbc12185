"""Content-addressed file store: a file lives at ``ROOT/ab/abcdef...`` named by its sha256,
written to a temporary file, synced and renamed, so an accepted byte is a durable byte and
the same content is stored once."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
_SHA = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(ValueError):
    """More bytes than allowed."""


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where content with this hash lives; refuses anything that is not a hash (so no
        name can reach outside the store)."""
        if not _SHA.match(sha256):
            raise KeyError(sha256)
        return self.root / sha256[:2] / sha256

    def put(self, source: BinaryIO, max_bytes: int) -> tuple[str, int]:
        """Copy a stream in; returns (sha256, size).

        Raises:
            TooLarge: the stream holds more than ``max_bytes`` (nothing is kept).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            target.parent.mkdir(exist_ok=True)
            Path(tmp).replace(target)
            return sha, size
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
