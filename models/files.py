"""File helpers every layer shares: hashing, atomic writes, folders that appear whole, and
reading a YAML or JSON config into a pydantic model with errors that name file and field."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a text file so that readers see the old or the new content, never a mix.
    The file gets ``mode`` (``mkstemp`` alone would leave it private to its owner)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """A folder to fill that replaces ``out`` only if the block succeeds; on any error it
    is removed and ``out`` is left as it was. It sits beside ``out`` (same file system), so
    the final rename is atomic."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class ConfigFileError(ValueError):
    """A config file that cannot be read into its model; names the file and the field."""


def validation_message(exc: ValidationError, noun: str = "field") -> str:
    """``field 'a.0.b': <what is wrong>`` for the first error of a pydantic validation."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{noun} {where!r}: {first['msg']}"


def read_mapping(path: Path, what: str) -> dict[str, object]:
    """A YAML (or JSON, which is YAML) file that must hold a mapping.

    Raises:
        ConfigFileError: missing file, bad syntax, or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: {what} not found") from None
    try:
        content = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigFileError(f"{path}: not valid {path.suffix[1:].upper() or 'YAML'} "
                              f"({exc})") from None
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise ConfigFileError(f"{path}: a {what} is a mapping of keys")
    return content


def load_model(path: Path, model: type[M], what: str, noun: str = "field") -> M:
    """Read ``path`` into ``model``.

    Raises:
        ConfigFileError: as :func:`read_mapping`, or naming the first bad field.
    """
    return validate_mapping(path, read_mapping(path, what), model, noun)


def validate_mapping(path: Path, content: dict[str, object], model: type[M],
                     noun: str = "field") -> M:
    """``content``, read from ``path``, as ``model``.

    Raises:
        ConfigFileError: naming ``path`` and the first bad field.
    """
    try:
        return model.model_validate(content)
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: {validation_message(exc, noun)}") from None
