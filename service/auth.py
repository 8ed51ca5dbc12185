"""API keys with roles. A key is shown once, when created; the database keeps its sha256."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from streetwatch.service.db import ApiKey

ROLES = ("ingest", "reviewer", "admin")
KEY_PREFIX = "sw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, role: str, name: str) -> str:
    """Store a new key of ``role`` and return it (the only time it is seen in clear)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, role=role, key_hash=hash_key(key)))
    session.commit()
    return key


def lookup(session: Session, key: str) -> ApiKey | None:
    """The live key record for ``key``, or None."""
    found: Any = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if found is None or found.revoked_at is not None:
        return None
    return found  # type: ignore[no-any-return]


def allows(role: str, needed: str) -> bool:
    """``admin`` may do everything; otherwise the role must be the one needed."""
    return role in ("admin", needed)
