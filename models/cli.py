"""``streetwatch models``: the class taxonomy (and, as they land, trained model artefacts)."""

from __future__ import annotations

import json

import click

from streetwatch.models.taxonomy import TAXONOMY


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
