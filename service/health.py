"""Liveness, readiness and metrics: no key needed (bind the service to a private network or
put them behind the proxy's own rules)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from sqlalchemy import func, select, text

from streetwatch.models.registry import RegistryError
from streetwatch.service.db import Job
from streetwatch.service.state import State

health = APIRouter()


@health.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@health.get("/readyz")
def readyz(state: State) -> JSONResponse:
    """The database answers, and a model is promoted, intact, has the artefact the
    detectors run (``STREETWATCH_MODEL_KIND``), and the job threads could load it as
    configured (e.g. at ``STREETWATCH_MODEL_IMGSZ``)."""
    problems = []
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        problems.append(f"database: {exc}")
    model = None
    try:
        model = state.registry.promoted()
        if model is None:
            problems.append(f"model: none promoted in {state.registry.root}")
        else:
            problems += [f"model: {p}" for p in state.registry.verify(model)]
            # raises when the card has no artefact of the kind the detectors run
            state.registry.artefact_path(state.registry.card(model), state.settings.model_kind)
    except RegistryError as exc:
        problems.append(f"model: {exc}")
    if model is not None and not any(p.startswith("model: ") for p in problems):
        loading = state.model_problem(model)  # what the registry cannot tell: does it load?
        if loading is not None:
            problems.append(f"model: {loading}")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "model": model})


@health.get("/metrics")
def metrics(state: State) -> PlainTextResponse:
    """Prometheus metrics."""
    with state.sessions() as session:
        queued = session.scalar(select(func.count()).where(Job.status == "queued")) or 0
    state.metrics.queue_depth.set(queued)
    return PlainTextResponse(generate_latest(state.metrics.registry).decode(),
                             media_type="text/plain; version=0.0.4")
