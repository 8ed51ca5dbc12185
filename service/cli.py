"""The ``streetwatch`` command: one group of subcommands per area.

Each area's commands live in its own package and are imported only when used, so the
serving install (no torch) starts fast and ``streetwatch train`` without the ``train`` extra
says what to install instead of failing on an import.
"""

from __future__ import annotations

import importlib
import logging

import click

# subcommand -> (module, attribute, extra that provides it)
_COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "data": ("streetwatch.datasets.cli", "data", None),
    "detect": ("streetwatch.inference.cli", "detect_command", None),
    "keys": ("streetwatch.service.commands", "keys", None),
    "serve": ("streetwatch.service.commands", "serve_command", None),
    "gc": ("streetwatch.service.commands", "gc_command", None),
    "models": ("streetwatch.models.cli", "models", None),
    "train": ("streetwatch.training.cli", "train_command", "train"),
    "average": ("streetwatch.training.cli", "average_command", "train"),
    "eval": ("streetwatch.training.cli", "eval_command", "train"),
    "export": ("streetwatch.training.cli", "export_command", "train"),
}
# Commands of a higher layer that join a lower layer's group: `data from-reviews` reads the
# service's database, which the datasets package must not import.
_JOINS: dict[str, list[tuple[str, str]]] = {
    "data": [("streetwatch.service.commands", "from_reviews_command")],
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module_name, attribute, extra = _COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if extra is None or exc.name is None or exc.name.startswith("streetwatch"):
                raise
            raise click.ClickException(
                f"'streetwatch {cmd_name}' needs {exc.name!r}: pip install 'streetwatch[{extra}]'"
            ) from None
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        if isinstance(command, click.Group):
            for joining_module, joining in _JOINS.get(cmd_name, []):
                extra_command = getattr(importlib.import_module(joining_module), joining)
                command.add_command(extra_command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="streetwatch")
def main(verbose: int) -> None:
    """streetwatch: find street-management violations in camera and dashcam footage."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
