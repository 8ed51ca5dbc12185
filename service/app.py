"""The FastAPI application: ``create_app(settings)`` builds one, with its own database,
metrics registry and model, so that several can live in one process (tests do)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.models.registry import Registry, RegistryError, default_registry_root
from streetwatch.service.auth import allows, lookup
from streetwatch.service.db import Case, Job, open_database
from streetwatch.service.settings import Settings


@dataclass
class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    registry: CollectorRegistry
    frames: Counter
    inference_seconds: Histogram
    dispatch_attempts: Counter
    dispatch_failures: Counter
    queue_depth: Gauge

    @classmethod
    def create(cls, sessions: sessionmaker[Session]) -> Metrics:
        registry = CollectorRegistry()
        registry.register(_CaseCollector(sessions))
        return cls(
            registry=registry,
            frames=Counter("streetwatch_frames_processed_total", "Frames run through the "
                           "detector", registry=registry),
            inference_seconds=Histogram("streetwatch_inference_seconds", "Detector time per "
                                        "frame", registry=registry,
                                        buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)),
            dispatch_attempts=Counter("streetwatch_dispatch_attempts_total", "Deliveries "
                                      "tried", registry=registry),
            dispatch_failures=Counter("streetwatch_dispatch_failures_total", "Deliveries "
                                      "failed", registry=registry),
            queue_depth=Gauge("streetwatch_queue_depth", "Jobs waiting", registry=registry),
        )


class _CaseCollector:
    """Cases by status, counted in the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Any:
        family = GaugeMetricFamily("streetwatch_cases", "Cases by status", labels=["status"])
        with self.sessions() as session:
            rows = session.execute(select(Case.status, func.count()).group_by(Case.status))
            for status, count in rows:
                family.add_metric([status], count)
        yield family


@dataclass
class Caller:
    """Who is calling: the key's name and role."""

    name: str
    role: str


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency admitting callers whose key has one of ``roles`` (or ``admin``)."""

    def check(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") \
            else request.headers.get("x-api-key", "")
        if not key:
            raise HTTPException(401, "an API key is required (Authorization: Bearer KEY)")
        with request.app.state.sessions() as session:
            record = lookup(session, key)
        if record is None:
            raise HTTPException(401, "unknown or revoked API key")
        if not any(allows(record.role, role) for role in roles):
            raise HTTPException(403, f"this endpoint needs the {' or '.join(roles)} role; the "
                                f"key has {record.role!r}")
        return Caller(record.name, record.role)

    return check


def create_app(settings: Settings) -> FastAPI:
    """The service for ``settings``: database migrated on start, metrics, health, auth."""
    engine, sessions = open_database(settings.db_url)
    registry = Registry(settings.registry or default_registry_root())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="streetwatch", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.registry = registry
    app.state.metrics = Metrics.create(sessions)

    @app.exception_handler(HTTPException)
    async def _json_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """The database answers and a model is promoted and intact."""
        problems = []
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means not ready
            problems.append(f"database: {exc}")
        try:
            model = registry.promoted()
            if model is None:
                problems.append(f"model: none promoted in {registry.root}")
            else:
                problems += [f"model: {p}" for p in registry.verify(model)]
        except RegistryError as exc:
            problems.append(f"model: {exc}")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready", "model": model})

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        state: Metrics = app.state.metrics
        with sessions() as session:
            queued = session.scalar(select(func.count()).where(Job.status == "queued")) or 0
        state.queue_depth.set(queued)
        return PlainTextResponse(generate_latest(state.registry).decode(),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/v1/whoami")
    def whoami(caller: Annotated[Caller, Depends(require("ingest", "reviewer"))]) -> dict[str, str]:
        """The calling key's name and role (any role may ask)."""
        return {"name": caller.name, "role": caller.role}

    return app
