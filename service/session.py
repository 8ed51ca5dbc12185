"""Browser sessions for the reviewer page: a reviewer signs in with their key once and the
browser then carries a signed, expiring cookie instead (an ``<img>`` cannot send headers).

The cookie is ``<key id>.<expiry>.<HMAC-SHA256>``, signed with a secret kept in the data
directory (created on first use), so sessions survive restarts and a revoked key ends its
sessions at once (the key is looked up on every request).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

COOKIE = "sw_session"
LIFETIME_S = 12 * 3600


def session_secret(data_dir: Path) -> bytes:
    """The data directory's session secret, created (private to its owner) on first use."""
    path = data_dir / "session.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def issue(secret: bytes, key_id: int, now: float | None = None) -> str:
    expires = int((now or time.time()) + LIFETIME_S)
    body = f"{key_id}.{expires}"
    return f"{body}.{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()}"


def check(secret: bytes, token: str, now: float | None = None) -> int | None:
    """The key id a valid, unexpired token was issued for, else None."""
    try:
        key_id, expires, signature = token.split(".")
        body = f"{key_id}.{expires}"
        good = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, signature) or int(expires) < (now or time.time()):
            return None
        return int(key_id)
    except ValueError:
        return None
