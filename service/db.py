"""The service's tables (SQLAlchemy 2) and how to open the database.

Schema changes go through Alembic (``service/migrations``); ``open_database`` upgrades a
database to the latest revision before use, so a new release migrates an old file in place.
Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC and read back as an aware UTC datetime. SQLite keeps
    no zone: without this, times came back naive (and a browser read them as local time)
    and a bound time in another zone was compared by its wall-clock digits."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r}: a stored time needs a zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class ApiKey(Base):
    """An API key: only its sha256 is stored (keys are 256 random bits, so a fast hash is
    enough; a slow one would only slow every request)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    """Work on an upload or a camera: queued -> running -> done | failed."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    source_kind: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    # ids of the stored cases its sightings joined instead of making new ones
    joined: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Upload(Base):
    """A stored file of a job, content-addressed in the store."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # photo, video, track
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    bytes: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Case(Base):
    """A case candidate and its life: pending_review -> confirmed -> dispatch_queued ->
    dispatched -> closed, or rejected, or merged."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True, default=None)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default="pending_review")
    category: Mapped[str] = mapped_column(String(40), index=True)
    dispatch_code: Mapped[str | None] = mapped_column(String(20), default=None)
    source_kind: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(200), index=True)
    first_seen: Mapped[datetime] = mapped_column(index=True)
    last_seen: Mapped[datetime]
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    grid_cell: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    box: Mapped[list[Any]] = mapped_column(default=list)
    # [{"lat", "lon"}] of every sighting merged into the case, its own first
    places: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    confidence: Mapped[float] = mapped_column(Float)
    detected: Mapped[str | None] = mapped_column(String(40), default=None)  # detector's class
    frame: Mapped[str | None] = mapped_column(String(64), index=True, default=None)  # its sha256
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    model: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rule: Mapped[str] = mapped_column(String(200))
    reject_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def evidence_links(self, base: str = "") -> list[dict[str, str]]:
        """Each evidence file's kind, sha256 and URL (``base`` + ``/v1/evidence/<name>``)."""
        return [{"kind": e["kind"], "sha256": e["sha256"],
                 "url": f"{base}/v1/evidence/{e['path'].rsplit('/', 1)[-1]}"}
                for e in self.evidence]


class FrameRow(Base):
    """An evidence frame as reviewers see it: the best frame of one or more cases, or a
    frame sampled where the model found nothing (to look for misses). Reviewers may add the
    boxes the model missed; a sampled frame counts as reviewed once someone looked at it."""

    __tablename__ = "frames"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # the JPEG evidence file
    kind: Mapped[str] = mapped_column(String(20), index=True)  # case, sample
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True, default=None)
    source_kind: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(200))
    captured_at: Mapped[datetime]
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    model: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added: Mapped[list[Any]] = mapped_column(default=list)  # [{category, box, who, at}]
    reviewed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Every change of a case: who, when, from, to, why."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    who: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str | None] = mapped_column(String(20), default=None)
    to_status: Mapped[str] = mapped_column(String(20))
    why: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxEntry(Base):
    """A confirmed case waiting to reach the dispatch system (written with the confirmation,
    in one transaction)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class CameraRow(Base):
    """A fixed camera: its configuration (the camera YAML's content, checked by
    ``inference.camera.Camera``), its stream URL, and whether its worker should run."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(500), default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fps: Mapped[float] = mapped_column(Float, default=1.0)
    running: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the latest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


def open_database(url: str) -> tuple[Engine, sessionmaker[Any]]:
    """Upgrade the database to the latest schema and return an engine and session factory.
    SQLite gets WAL journaling (readers never block the writer) and foreign keys."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _pragmas(engine, *SQLITE_PRAGMAS)
    return engine, sessionmaker(engine, expire_on_commit=False)


SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON")


def _pragmas(engine: Engine, *pragmas: str) -> None:
    """Run these SQLite pragmas on each new connection of ``engine``."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


def unsynced_engine(engine: Engine) -> Engine:
    """An engine on ``engine``'s database whose commits do not wait for the disk to sync.

    Only for writes a restart redoes: a job's claim, progress, and its cases with the job's
    end, all in one transaction. A process that dies loses none of them (the operating
    system holds what was written); a machine that loses power may lose the last few, and
    a job whose end was lost is still ``running`` in the database, so it runs again after
    the restart and its stable case ids keep it from doubling anything. Uploads, reviews
    and dispatch keep synced commits. SQLite in WAL mode: ``synchronous=NORMAL`` (the
    database stays consistent; a later synced commit syncs these too); PostgreSQL:
    ``synchronous_commit=off``. A job's commits waited on the disk for about 7 % of a job
    thread's time in the service's load benchmark."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        relaxed = create_engine(engine.url)  # (an in-memory database is one per engine)
        _pragmas(relaxed, *SQLITE_PRAGMAS, "synchronous=NORMAL")
    elif engine.dialect.name == "postgresql":
        relaxed = create_engine(engine.url, connect_args={
            "options": "-c synchronous_commit=off"})
    else:
        relaxed = engine
    return relaxed
