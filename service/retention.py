"""Storage retention (``streetwatch gc``): the footage of jobs that ended long ago, and
files nothing refers to.

An upload is raw footage. Once its job has ended, the job's cases carry their own evidence
and the footage is only needed to run the job again, so it may go after a while. Uploads
are stored by content, so a file goes only when every job holding that content ended
before the cut-off. Evidence is kept while a case's evidence list or a frame row names it;
an unnamed evidence file (a job that crashed, then ran again on another model) and the
temporary file of a write that never finished go once they are older than a grace period,
so a job still writing is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, not_, select
from sqlalchemy.orm import Session, sessionmaker

from streetwatch.service.db import Case, FrameRow, Job, Upload
from streetwatch.service.store import Store

ENDED = ("done", "failed")


@dataclass
class Pruned:
    """What was (or, in a dry run, would be) deleted."""

    uploads: list[Path] = field(default_factory=list)
    evidence: list[Path] = field(default_factory=list)
    partial: list[Path] = field(default_factory=list)
    bytes: int = 0

    def add(self, kind: list[Path], path: Path) -> None:
        kind.append(path)
        self.bytes += path.stat().st_size


def prune(sessions: sessionmaker[Session], store: Store, evidence: Path, *,
          uploads_after: timedelta, grace: timedelta = timedelta(days=1),
          now: datetime | None = None, dry_run: bool = False) -> Pruned:
    """Delete upload files of jobs that ended more than ``uploads_after`` ago (unless a
    newer or unfinished job holds the same content), and evidence and temporary files that
    nothing names and that are older than ``grace``."""
    now = now or datetime.now(UTC)
    pruned = Pruned()
    with sessions() as session:
        for sha in _expired_uploads(session, now - uploads_after):
            path = store.path(sha)
            if path.exists():
                pruned.add(pruned.uploads, path)
        orphans = {p.stem: p for pattern in ("*.jpg", "*.webm")
                   for p in _older(evidence, pattern, now - grace)}
        for (sha,) in session.execute(select(FrameRow.sha256)).yield_per(1000):
            orphans.pop(sha, None)
        for (items,) in session.execute(select(Case.evidence)).yield_per(1000):
            for item in items:
                orphans.pop(str(item.get("sha256")), None)
        for path in sorted(orphans.values()):
            pruned.add(pruned.evidence, path)
    for path in [*_older(evidence, "*.tmp", now - grace),
                 *_older(store.root, ".upload-*", now - grace)]:
        pruned.add(pruned.partial, path)
    if not dry_run:
        for path in [*pruned.uploads, *pruned.evidence, *pruned.partial]:
            path.unlink(missing_ok=True)
    return pruned


def _expired_uploads(session: Session, cutoff: datetime) -> set[str]:
    expired = and_(Job.status.in_(ENDED), Job.finished_at < cutoff)
    held = select(Upload.sha256).join(Job, Upload.job_id == Job.id)
    old = set(session.scalars(held.where(expired)))
    return old - set(session.scalars(held.where(not_(expired))))


def _older(root: Path, pattern: str, cutoff: datetime) -> Iterator[Path]:
    if not root.is_dir():
        return
    limit = cutoff.timestamp()
    for path in root.rglob(pattern):
        if path.is_file() and path.stat().st_mtime < limit:
            yield path
