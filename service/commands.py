"""``streetwatch serve``, ``keys``, ``gc`` and ``data from-reviews``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from streetwatch.service.auth import ROLES, create_key
from streetwatch.service.db import open_database
from streetwatch.service.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve_command(host: str, port: int) -> None:
    """Run the service (settings from STREETWATCH_* variables; see README). Logs go to
    stderr, one JSON object a line (STREETWATCH_LOG_FORMAT=text for plain lines), from INFO
    up (-vv: DEBUG)."""
    import logging

    import uvicorn

    from streetwatch.service.app import create_app
    from streetwatch.service.logs import configure

    settings = _settings()
    level = min(logging.INFO, logging.getLogger().level)  # -v on the main command lowers it
    configure(settings.log_format, level)
    # uvicorn's access log is replaced by the app's own request lines (logs.RequestLog)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                log_level=level, access_log=False)


@click.group("keys")
def keys() -> None:
    """API keys of the service."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default="", help="Who or what uses the key.")
def create_command(role: str, name: str) -> None:
    """Create a key and print it: it is shown this once; only its hash is stored."""
    _engine, sessions = open_database(_settings().db_url)
    with sessions() as session:
        key = create_key(session, role, name or role)
    click.echo(key)


def _aware(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("Asia/Shanghai"))


@click.command("from-reviews")
@click.option("--since", callback=_aware, metavar="DATE",
              help="Decisions at or after this date or ISO time (Asia/Shanghai unless a zone "
                   "is given) [default: all].")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The dataset folder to write.")
@click.option("--val", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Share of camera-days for validation.")
@click.option("--test", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True, help="Share of camera-days held out for evaluation.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def from_reviews_command(since: datetime | None, out: Path, val: float, test: float,
                         force: bool) -> None:
    """A dataset from review decisions: confirmed and corrected cases and added boxes as
    labels, false alarms as hard negatives (the service's database: STREETWATCH_*)."""
    from streetwatch.datasets.feedback import write_feedback
    from streetwatch.datasets.format import DatasetError
    from streetwatch.service.feedback import collect

    settings = _settings()
    _engine, sessions = open_database(settings.db_url)
    collected = collect(sessions, settings.data_dir / "evidence", since=since)
    try:
        dataset = write_feedback(collected.frames, out, val=val, test=test, overwrite=force,
                                 report=collected.report(since))
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    kinds = Counter(r.meta["feedback"] for r in dataset.records)
    splits = Counter(r.split for r in dataset.records)
    click.echo(f"{out}: {len(dataset.records)} frames ("
               + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "; "
               + ", ".join(f"{n} {s}" for s, n in sorted(splits.items())) + ")")
    if collected.held_back:
        click.echo(f"{len(collected.held_back)} frames held back (see {out}/feedback.json)")


@click.command("gc")
@click.option("--uploads-days", type=click.FloatRange(min=0), default=30, show_default=True,
              help="Delete the footage of jobs that ended more than this many days ago.")
@click.option("--grace-hours", type=click.FloatRange(min=0), default=24, show_default=True,
              help="Age before an evidence file no case names, or an unfinished write, goes.")
@click.option("--dry-run", is_flag=True, help="Print what would go; delete nothing.")
def gc_command(uploads_days: float, grace_hours: float, dry_run: bool) -> None:
    """Free storage: footage of long-ended jobs, evidence no case or frame names, and
    unfinished writes (the service's data: STREETWATCH_*). Cases keep their evidence."""
    from datetime import timedelta

    from streetwatch.service.retention import prune
    from streetwatch.service.store import Store

    settings = _settings()
    _engine, sessions = open_database(settings.db_url)
    pruned = prune(sessions, Store(settings.data_dir / "uploads"),
                   settings.data_dir / "evidence", uploads_after=timedelta(days=uploads_days),
                   grace=timedelta(hours=grace_hours), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(pruned.uploads)} upload(s), {len(pruned.evidence)} unnamed "
               f"evidence file(s), {len(pruned.partial)} unfinished write(s): "
               f"{pruned.bytes / 1e6:.1f} MB")
