"""``streetwatch serve`` and ``streetwatch keys``."""

from __future__ import annotations

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
    """Run the service (settings from STREETWATCH_* variables; see README)."""
    import uvicorn

    from streetwatch.service.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


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
