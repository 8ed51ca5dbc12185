"""The service's logs: one JSON object a line (python-json-logger), and one line a request.

``streetwatch serve`` calls :func:`configure` once at start (an application sets up logging
at its entry point; importing or building the app changes nothing). Each record is an
object with ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, plus the fields
the code passed as ``extra`` (``job_id``, ``case_id``, ``status``, ...), so a log shipper
can filter and count without parsing prose. ``text`` gives the same records as plain lines
for a person at a terminal.

:class:`RequestLog` replaces uvicorn's access log: a line per HTTP request with its method,
path, status, duration and request id (the caller's ``X-Request-ID`` if it sent one, else a
new one, echoed in the answer), on the ``streetwatch.http`` logger, and times it for the
``streetwatch_http_request_seconds`` histogram. Probes and metrics scrapes are logged at
DEBUG, so a healthy idle service stays quiet at INFO.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from typing import Literal

from pythonjsonlogger.json import JsonFormatter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# paths asked every few seconds by probes and scrapers: DEBUG, not INFO
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")  # what a caller's id may look like
http_log = logging.getLogger("streetwatch.http")


def formatter(kind: LogFormat) -> logging.Formatter:
    """A formatter writing records as JSON objects (``json``) or plain lines (``text``)."""
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         json_ensure_ascii=False)


def _without_colour(record: logging.LogRecord) -> bool:
    """Drop uvicorn's ``color_message`` (the message with terminal colour codes)."""
    record.__dict__.pop("color_message", None)
    return True


def configure(kind: LogFormat, level: int | str = logging.INFO) -> None:
    """Send every logger's records (uvicorn's and Python warnings too) to stderr as
    ``kind``, from ``level`` up, replacing the handlers the root logger had. (Native
    libraries that print to stderr themselves, such as OpenCV's FFmpeg notes when it writes
    a WebM clip, still add a plain line now and then.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    handler.addFilter(_without_colour)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root's handler
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)  # Python warnings become records too, not bare stderr text
    # Alembic announces each of its plugins at INFO on every start
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


Observe = Callable[[str, str, int, float], None]  # method, route, status, seconds


class RequestLog:
    """ASGI middleware: logs each HTTP request once it is answered, with its request id,
    and hands ``observe`` its method, route template (``unmatched`` for paths no route
    serves), status and duration, for a metric."""

    def __init__(self, app: ASGIApp, observe: Observe | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        status = 500  # what the client gets if the app fails before answering

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            path = scope["path"]
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # set by routing
            client = scope.get("client")
            http_log.log(
                logging.DEBUG if path in QUIET_PATHS else logging.INFO,
                "%s %s %d %.1f ms", scope["method"], path, status, seconds * 1000,
                extra={"method": scope["method"], "path": path, "route": route,
                       "status": status, "ms": round(seconds * 1000, 1),
                       "client": client[0] if client else None, "request_id": request_id})
            if self.observe is not None:
                self.observe(scope["method"], route, status, seconds)
