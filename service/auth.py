"""API keys with roles. A key is shown once, when created; the database keeps its sha256."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from streetwatch.service.db import ApiKey
from streetwatch.service.session import COOKIE
from streetwatch.service.session import check as check_session

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


@dataclass
class Caller:
    """Who is calling: the key's name and role."""

    name: str
    role: str


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency admitting callers whose key has one of ``roles`` (or ``admin``). The key
    comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""

    def check(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") \
            else request.headers.get("x-api-key", "")
        state = request.app.state.sw
        cookie = request.cookies.get(COOKIE)
        with state.sessions() as session:
            if key:
                record = lookup(session, key)
            elif cookie and (key_id := check_session(state.session_secret, cookie)):
                record = session.get(ApiKey, key_id)
                record = None if record is None or record.revoked_at else record
            else:
                raise HTTPException(401, "an API key is required (Authorization: Bearer KEY)"
                                    " or a session (sign in on /review)")
        if record is None:
            raise HTTPException(401, "unknown or revoked API key, or an expired session")
        if not any(allows(record.role, role) for role in roles):
            raise HTTPException(403, f"this endpoint needs the {' or '.join(roles)} role; the "
                                f"key has {record.role!r}")
        return Caller(record.name, record.role)

    return check
