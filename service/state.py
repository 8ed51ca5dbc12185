"""What the routes of one app share, reached through ``request.app.state.sw``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.models.registry import Registry
from streetwatch.service.db import Case
from streetwatch.service.events import JobEvents
from streetwatch.service.settings import Settings
from streetwatch.service.store import Store


@dataclass
class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    registry: CollectorRegistry
    frames: Counter
    inference_seconds: Histogram
    dispatch_attempts: Counter
    dispatch_failures: Counter
    queue_depth: Gauge
    http_seconds: Histogram

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
            # by the route's template (/v1/jobs/{job_id}), so ids do not multiply the series
            http_seconds=Histogram("streetwatch_http_request_seconds", "HTTP requests by "
                                   "method, route and status, answered within",
                                   ["method", "route", "status"], registry=registry,
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                            5, 10, 30, 60)),
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_seconds.labels(method, route, str(status)).observe(seconds)


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


def _nothing() -> None:
    pass


def _no_problem(_ref: str) -> str | None:
    return None


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    registry: Registry
    store: Store
    evidence: Path
    metrics: Metrics
    session_secret: bytes = b""
    wake_worker: Callable[[], None] = _nothing
    model_problem: Callable[[str], str | None] = _no_problem  # why a model will not load
    job_events: JobEvents = field(default_factory=JobEvents)
    job_recheck_s: float = 1.0  # a long poll re-reads the job at least this often


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sw
    return state


State = Annotated[AppState, Depends(get_state)]
