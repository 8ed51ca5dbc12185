"""The FastAPI application: ``create_app(settings)`` builds one, with its own database,
worker, metrics registry and model, so that several can live in one process (tests do)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import sessionmaker

from streetwatch.models.registry import Registry, default_registry_root
from streetwatch.service.api import api
from streetwatch.service.cameras_api import cameras, resume
from streetwatch.service.db import open_database, unsynced_engine
from streetwatch.service.dispatch import Dispatcher
from streetwatch.service.frames_api import frames
from streetwatch.service.health import health
from streetwatch.service.jobs import Services, Worker
from streetwatch.service.logs import RequestLog
from streetwatch.service.review_page import review_page
from streetwatch.service.session import session_secret
from streetwatch.service.settings import Settings
from streetwatch.service.state import AppState, Metrics
from streetwatch.service.store import Store
from streetwatch.service.streams import StreamWorkers


def create_app(settings: Settings) -> FastAPI:
    """The service for ``settings``: the database is migrated now; the job worker runs
    while the app does (FastAPI's lifespan)."""
    engine, sessions = open_database(settings.db_url)
    job_engine = unsynced_engine(engine)
    state = AppState(settings=settings, sessions=sessions,
                     registry=Registry(settings.registry or default_registry_root()),
                     store=Store(settings.data_dir / "uploads"),
                     evidence=settings.data_dir / "evidence", metrics=Metrics.create(sessions),
                     session_secret=session_secret(settings.data_dir))
    worker = Worker(Services(sessions, state.store, state.evidence, state.registry,
                             state.metrics, case_conf=settings.case_confidence,
                             sample_rate=settings.sample_rate, events=state.job_events,
                             clip_seconds=settings.clip_seconds,
                             model_kind=settings.model_kind,
                             model_imgsz=settings.model_imgsz,
                             job_sessions=sessionmaker(job_engine, expire_on_commit=False)),
                    threads=settings.workers)
    secret = settings.dispatch_secret.get_secret_value() if settings.dispatch_secret else None
    dispatcher = Dispatcher(sessions, settings.dispatch_url, secret, state.metrics,
                            poll_s=settings.dispatch_poll_s,
                            backoff_s=settings.dispatch_backoff_s) \
        if settings.dispatch_url and secret else None

    state.wake_worker, state.model_problem = worker.notify, worker.model_problem
    streams = StreamWorkers(worker)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        if dispatcher is not None:
            dispatcher.start()
        resume(state, streams)
        yield
        streams.stop_all()
        if dispatcher is not None:
            dispatcher.stop()
        worker.stop()
        engine.dispose()
        job_engine.dispose()

    app = FastAPI(title="streetwatch", version="1", lifespan=lifespan)
    app.state.sw = state
    app.state.streams = streams
    app.add_middleware(RequestLog, observe=state.metrics.observe_request)

    @app.exception_handler(HTTPException)
    async def _json_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}", "errors": exc.errors()},
                            status_code=422)

    app.include_router(health)
    app.include_router(api)
    app.include_router(cameras)
    app.include_router(frames)
    app.include_router(review_page)
    return app
