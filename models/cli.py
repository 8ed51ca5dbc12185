"""``streetwatch models``: the class taxonomy and the registry of trained models."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from streetwatch.models.registry import Registry, RegistryError, default_registry_root
from streetwatch.models.taxonomy import TAXONOMY

REGISTRY_OPTION = click.option(
    "--registry", "registry_root", type=click.Path(file_okay=False, path_type=Path),
    default=None, help="Registry folder [default: $STREETWATCH_REGISTRY, else the shipped one].")


def open_registry(root: Path | None) -> Registry:
    """The registry at ``root``, or the default one."""
    return Registry(root or default_registry_root())


@click.group("models")
def models() -> None:
    """The class taxonomy and trained models."""


@models.command("taxonomy")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def taxonomy_command(as_json: bool) -> None:
    """Print the classes: id, key, names, dispatch codes, whether a class can be a case."""
    if as_json:
        payload = {
            "version": TAXONOMY.version,
            "classes": [
                {
                    "id": c.id,
                    "key": c.key,
                    "name_en": c.name_en,
                    "name_zh": c.name_zh,
                    "color": c.color_hex,
                    "dispatch_codes": list(c.dispatch_codes),
                    "can_be_case": c.can_be_case,
                }
                for c in TAXONOMY
            ],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    click.echo(f"taxonomy version {TAXONOMY.version}")
    for c in TAXONOMY:
        codes = ",".join(c.dispatch_codes) or ("(local code)" if c.can_be_case else "-")
        case = "case" if c.can_be_case else "context"
        click.echo(f"{c.id}  {c.key:<16} {c.name_zh:<10} {c.name_en:<24} {codes:<12} {case}")


@models.command("list")
@REGISTRY_OPTION
def list_command(registry_root: Path | None) -> None:
    """List registered models; * marks the promoted one."""
    registry = open_registry(registry_root)
    try:
        cards = registry.cards()
        promoted = registry.promoted()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if not cards:
        click.echo(f"no models in {registry.root}")
        return
    for card in cards:
        mark = "*" if card.ref == promoted else " "
        kinds = ",".join(sorted(card.artefacts))
        scores = "  ".join(f"{key} mAP50 {ev.all.ap50:.3f}" for key, ev in card.metrics.items())
        click.echo(f"{mark} {card.ref:<28} {card.created_at:%Y-%m-%d} {card.imgsz:>4}px "
                   f"{kinds:<12} {scores}")


@models.command("show")
@click.argument("ref", metavar="NAME:VERSION", required=False)
@REGISTRY_OPTION
def show_command(ref: str | None, registry_root: Path | None) -> None:
    """Print a model's card as JSON (default: the promoted model)."""
    registry = open_registry(registry_root)
    try:
        ref = ref or registry.promoted()
        if ref is None:
            raise RegistryError(f"no model is promoted in {registry.root}; name one")
        click.echo(registry.card(ref).model_dump_json(indent=2))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@models.command("verify")
@click.argument("refs", metavar="[NAME:VERSION]...", nargs=-1)
@REGISTRY_OPTION
def verify_command(refs: tuple[str, ...], registry_root: Path | None) -> None:
    """Recompute every artefact's sha256 against its card (default: every model)."""
    registry = open_registry(registry_root)
    failed = 0
    try:
        for ref in refs or [card.ref for card in registry.cards()]:
            problems = registry.verify(ref)
            click.echo(f"{ref}: {'ok' if not problems else 'FAILED'}")
            for problem in problems:
                click.echo(f"  {problem}")
            failed += bool(problems)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if failed:
        raise click.ClickException(f"{failed} model(s) failed verification")


@models.command("promote")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--force", is_flag=True,
              help="Promote even if a class falls more than 0.02 AP50 below the current model.")
@REGISTRY_OPTION
def promote_command(ref: str, force: bool, registry_root: Path | None) -> None:
    """Make a model the one the service uses.

    Refused when the model fails verification, or when on an evaluation set both models were
    scored on, any class's AP50 is more than 0.02 below the current model's (unless --force).
    """
    registry = open_registry(registry_root)
    try:
        overridden = registry.promote(ref, by=getpass.getuser(), force=force)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    for objection in overridden:
        click.echo(f"forced past: {objection}", err=True)
    click.echo(f"promoted {ref}")


@models.command("rollback")
@REGISTRY_OPTION
def rollback_command(registry_root: Path | None) -> None:
    """Promote again the model that served before the current one."""
    registry = open_registry(registry_root)
    try:
        ref = registry.rollback(by=getpass.getuser())
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rolled back to {ref}")
