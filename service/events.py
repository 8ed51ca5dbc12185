"""Job ends, told to the requests waiting on them (long polling of ``GET /v1/jobs/{id}``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class JobEvents:
    """Tells requests waiting on a job (long polling) that it ended. The worker thread calls
    :meth:`ended`; each waiter's event is set on its own event loop. A waiter that is not
    told (another process ran the job) finds out at its next look at the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``job_id`` ends; watch before reading the job's status, so an
        end between the read and the wait is not missed."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(job_id, []).append(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id, [])
                waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(job_id, None)

    def ended(self, job_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for loop, event in waiters:
            with suppress(RuntimeError):  # that loop has closed: nobody is waiting
                loop.call_soon_threadsafe(event.set)
