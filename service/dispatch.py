"""Handing confirmed cases to the city's dispatch system, exactly once.

Confirming a case writes an outbox row in the same transaction. This worker POSTs each
undelivered row to ``STREETWATCH_DISPATCH_URL`` with an HMAC-SHA256 signature of the body
(``X-Streetwatch-Signature: sha256=<hex>``, key ``STREETWATCH_DISPATCH_SECRET``) and the
case id as ``Idempotency-Key``, so the receiver can drop repeats. A connection error, a
timeout or a 5xx is retried with exponential backoff (2, 4, 8 ... seconds, at most 5
minutes); a 2xx marks the row delivered and the case ``dispatched``; a 4xx is recorded and
retried slowly, since the receiver refused what we sent. The payload is documented in the
README ("Dispatch payload, version 1").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.models.taxonomy import TAXONOMY
from streetwatch.service.db import AuditEntry, Case, OutboxEntry, utcnow
from streetwatch.service.state import Metrics

log = logging.getLogger(__name__)
PAYLOAD_VERSION = "1"
SIGNATURE_HEADER = "X-Streetwatch-Signature"
MAX_BACKOFF_S = 300.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def payload(case: Case, reviewer: str, public_url: str) -> dict[str, Any]:
    """The versioned JSON a dispatch system receives for a confirmed case."""
    info = TAXONOMY.by_key(case.category)
    return {
        "version": PAYLOAD_VERSION,
        "case_id": case.id,
        "category": {"key": case.category, "code": case.dispatch_code,
                     "name_zh": info.name_zh, "name_en": info.name_en},
        "location": {"lat": case.lat, "lon": case.lon, "grid_cell": case.grid_cell,
                     "crs": "WGS84", "places": case.places},
        "first_seen": case.first_seen.isoformat(), "last_seen": case.last_seen.isoformat(),
        "confirmed_at": utcnow().isoformat(),
        "evidence": case.evidence_links(public_url.rstrip("/")),
        "confidence": case.confidence,
        "model": case.model,
        "source": {"kind": case.source_kind, "id": case.source_id},
        "reviewer": reviewer,
    }


class Dispatcher:
    """Delivers the outbox in a background thread."""

    def __init__(self, sessions: sessionmaker[Session], url: str, secret: str,
                 metrics: Metrics, poll_s: float = 1.0, timeout_s: float = 10.0,
                 backoff_s: float = 2.0) -> None:
        self.sessions, self.url, self.secret = sessions, url, secret
        self.metrics, self.poll_s, self.backoff_s = metrics, poll_s, backoff_s
        self._client = httpx.Client(timeout=timeout_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception:  # never let the loop die
                log.exception("dispatch pass failed")
                sent = 0
            if not sent:
                self._stop.wait(self.poll_s)

    def deliver_due(self) -> int:
        """Try every row that is due; returns how many were delivered."""
        with self.sessions() as session:
            due = list(session.scalars(select(OutboxEntry.id).where(
                OutboxEntry.delivered_at.is_(None), OutboxEntry.next_attempt_at <= utcnow())
                .order_by(OutboxEntry.id)))
        return sum(self._deliver(entry_id) for entry_id in due)

    def _deliver(self, entry_id: int) -> bool:
        with self.sessions() as session:
            entry = session.get(OutboxEntry, entry_id)
            if entry is None or entry.delivered_at is not None:
                return False
            body = json.dumps(entry.payload, ensure_ascii=False, sort_keys=True).encode()
            self.metrics.dispatch_attempts.inc()
            entry.attempts += 1
            error = None
            try:
                response = self._client.post(self.url, content=body, headers={
                    "Content-Type": "application/json", "Idempotency-Key": entry.case_id,
                    SIGNATURE_HEADER: sign(self.secret, body)})
                if response.is_success:
                    entry.delivered_at = utcnow()
                    case = session.get(Case, entry.case_id)
                    if case is not None and case.status == "dispatch_queued":
                        session.add(AuditEntry(case_id=case.id, who="dispatch",
                                               from_status=case.status, to_status="dispatched",
                                               why=f"delivered to {self.url}"))
                        case.status = "dispatched"
                    session.commit()
                    log.info("case %s delivered to dispatch (attempt %d)", entry.case_id,
                             entry.attempts, extra={"case_id": entry.case_id,
                                                    "attempt": entry.attempts})
                    return True
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.metrics.dispatch_failures.inc()
            backoff = min(self.backoff_s * 2.0 ** (entry.attempts - 1), MAX_BACKOFF_S)
            entry.next_attempt_at = utcnow() + timedelta(seconds=backoff)
            entry.last_error = error
            session.commit()
            log.warning("dispatch of case %s failed (%s); retry in %.0f s", entry.case_id, error,
                        backoff, extra={"case_id": entry.case_id, "attempt": entry.attempts,
                                        "error": error, "retry_s": backoff})
            return False
