"""Model cards and the registry of trained artefacts.

A registry is a folder::

    ROOT/registry.json            which model is promoted, and the history of promotions
    ROOT/NAME/VERSION/card.json   the model card
    ROOT/NAME/VERSION/model.onnx, model.int8.onnx, model.pt   the artefacts it names

A model enters whole or not at all (it is assembled beside its final place and renamed),
and a name and version are registered once: artefacts never change under a card. Metrics are
added to a card as evaluations are run; each evaluation is keyed by the evaluation set's
name and carries its data fingerprint, so two models are compared only on the same data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streetwatch.models.files import atomic_write_text, sha256_file, validation_message
from streetwatch.models.taxonomy import TAXONOMY

CARD = "card.json"
REGISTRY_JSON = "registry.json"
ARTEFACT_FILES = {"pt": "model.pt", "onnx": "model.onnx", "int8": "model.int8.onnx"}
# promote refuses a model this much below the promoted one on any class (AP50).
PROMOTION_TOLERANCE = 0.02
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says which model and why."""


class Artefact(BaseModel):
    """One file of a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class ClassMetrics(BaseModel):
    """Detection quality on one class (or on all of them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: float
    recall: float
    ap50: float
    ap50_95: float
    instances: int


class Evaluation(BaseModel):
    """A model's metrics on one evaluation set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = Field(description="the evaluation set's path when it was run")
    fingerprint: str = Field(description="sha256 of its manifest: the data compared on")
    split: str
    images: int
    artefact: str = Field(description="which artefact was evaluated: pt, onnx or int8")
    classes: dict[str, ClassMetrics]
    all: ClassMetrics
    evaluated_at: datetime


class TrainingInfo(BaseModel):
    """Where a model came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: dict[str, str] = Field(default_factory=dict,
                                 description="training dataset -> manifest sha256")
    epochs: int | None = None
    seconds: float | None = None
    command: str | None = None
    config: dict[str, object] = Field(default_factory=dict)


class ModelCard(BaseModel):
    """Everything a user of a model needs to know to trust and run it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    version: str = Field(pattern=_NAME)
    created_at: datetime
    taxonomy_version: str
    classes: list[str]
    imgsz: int = Field(gt=0)
    artefacts: dict[str, Artefact]
    training: TrainingInfo = Field(default_factory=TrainingInfo)
    metrics: dict[str, Evaluation] = Field(default_factory=dict)
    parent: str | None = Field(default=None,
                               description="NAME:VERSION of the model it was tuned from")
    notes: str = ""

    @property
    def ref(self) -> str:
        """``NAME:VERSION``."""
        return f"{self.name}:{self.version}"


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME:VERSION`` -> ``(NAME, VERSION)``; each is lower-case letters, digits, ``._-``."""
    name, sep, version = ref.partition(":")
    if not sep or not re.match(_NAME, name) or not re.match(_NAME, version):
        raise RegistryError(f"{ref!r}: a model is named NAME:VERSION (lower-case letters, "
                            "digits, '.', '_' and '-')")
    return name, version


class Registry:
    """A registry folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # registry.json as last read, by the (inode, mtime, size) it had: it is only ever
        # replaced whole (``atomic_write_text``), so a new promotion changes the key
        self._read: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- reading ---------------------------------------------------------------------------

    def card_path(self, ref: str) -> Path:
        name, version = parse_ref(ref)
        return self.root / name / version / CARD

    def card(self, ref: str) -> ModelCard:
        """Read a model's card.

        Raises:
            RegistryError: an unknown model or an unreadable card (naming the file and field).
        """
        path = self.card_path(ref)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistryError(f"{ref}: no such model in {self.root}") from None
        try:
            card = ModelCard.model_validate_json(text)
        except ValidationError as exc:
            raise RegistryError(f"{path}: {validation_message(exc)}") from None
        if card.ref != ref:
            raise RegistryError(f"{path}: the card names {card.ref}, but its folder is {ref}")
        return card

    def cards(self) -> list[ModelCard]:
        """Every registered model, by name then creation time."""
        found = [self.card(f"{p.parent.parent.name}:{p.parent.name}")
                 for p in sorted(self.root.glob(f"*/*/{CARD}"))
                 if not p.parent.name.startswith(".")]  # staging left by a killed register
        return sorted(found, key=lambda c: (c.name, c.created_at))

    def artefact_path(self, card: ModelCard, kind: str) -> Path:
        """The file of one of a model's artefacts (``pt``, ``onnx`` or ``int8``)."""
        if kind not in card.artefacts:
            have = ", ".join(sorted(card.artefacts)) or "none"
            raise RegistryError(f"{card.ref}: has no {kind} artefact (it has: {have})")
        return self.card_path(card.ref).parent / card.artefacts[kind].file

    def promoted(self) -> str | None:
        """``NAME:VERSION`` of the model the service uses, if one was promoted."""
        history = self._state().get("history", [])
        return str(history[-1]["model"]) if history else None

    def history(self) -> list[dict[str, str]]:
        """Promotions, oldest first: model, at, by, forced."""
        return list(self._state().get("history", []))

    def _state(self) -> dict[str, list[dict[str, str]]]:
        """The promotion history file, read again only when it has changed on disk (the
        service asks before every job)."""
        path = self.root / REGISTRY_JSON
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._read is not None and self._read[0] == key:
            return self._read[1]
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(content, dict) or not isinstance(content.get("history", []), list):
            raise RegistryError(f"{path}: expected {{\"history\": [...]}}")
        self._read = (key, content)
        return content

    # -- writing ---------------------------------------------------------------------------

    def register(self, card: ModelCard, files: dict[str, Path]) -> ModelCard:
        """Add a model: copy its artefacts in and write its card, all at once.

        Args:
            card: The card; its ``artefacts`` are filled in from ``files``.
            files: Artefact kind (``pt``, ``onnx``, ``int8``) -> file to copy.

        Raises:
            RegistryError: the name and version exist, a kind is unknown, a file is missing,
                or the card's classes are not the taxonomy's.
        """
        unknown = sorted(set(files) - set(ARTEFACT_FILES))
        if unknown:
            raise RegistryError(f"unknown artefact kind(s) {unknown}; use {sorted(ARTEFACT_FILES)}")
        if not files:
            raise RegistryError(f"{card.ref}: nothing to register (no artefact files)")
        if card.classes != TAXONOMY.keys or card.taxonomy_version != TAXONOMY.version:
            raise RegistryError(f"{card.ref}: classes {card.classes} (taxonomy "
                                f"v{card.taxonomy_version}) are not the taxonomy's "
                                f"{TAXONOMY.keys} (v{TAXONOMY.version})")
        final = self.card_path(card.ref).parent
        if final.exists():
            raise RegistryError(f"{card.ref}: already registered in {self.root}; "
                                "a version is registered once, give a new --version")
        for kind, path in files.items():
            if not Path(path).is_file():
                raise RegistryError(f"{path}: {kind} artefact not found")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{card.version}.", dir=final.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a service user
        try:
            artefacts = {}
            for kind, path in sorted(files.items()):
                target = staging / ARTEFACT_FILES[kind]
                shutil.copyfile(path, target)
                artefacts[kind] = Artefact(file=target.name, sha256=sha256_file(target),
                                           bytes=target.stat().st_size)
            card = card.model_copy(update={"artefacts": artefacts})
            (staging / CARD).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
            try:
                staging.rename(final)
            except OSError:  # another process registered it meanwhile
                raise RegistryError(f"{card.ref}: already registered in {self.root}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return card

    def add_evaluation(self, ref: str, key: str, evaluation: Evaluation) -> ModelCard:
        """Record (or replace) a model's metrics on an evaluation set."""
        card = self.card(ref)
        card.metrics[key] = evaluation
        atomic_write_text(self.card_path(ref), card.model_dump_json(indent=2) + "\n")
        return card

    def verify(self, ref: str) -> list[str]:
        """Recompute every artefact's sha256; returns the problems (empty when all match)."""
        card = self.card(ref)
        problems = []
        for kind, artefact in sorted(card.artefacts.items()):
            path = self.artefact_path(card, kind)
            if not path.exists():
                problems.append(f"{path}: missing ({kind})")
            elif (actual := sha256_file(path)) != artefact.sha256:
                problems.append(f"{path}: sha256 {actual} does not match the card's "
                                f"{artefact.sha256} ({kind})")
        return problems

    def promotion_check(self, ref: str) -> list[str]:
        """Why ``ref`` may not replace the promoted model (empty: it may).

        The two are compared on every evaluation set both were scored on with the same data
        fingerprint; a class whose AP50 falls more than ``PROMOTION_TOLERANCE`` blocks it.
        """
        current = self.promoted()
        candidate = self.card(ref)
        if current is None or current == ref:
            return []
        try:
            baseline = self.card(current)
        except RegistryError as exc:
            return [f"the promoted model {current} cannot be read: {exc}"]
        shared = [key for key, ev in baseline.metrics.items()
                  if key in candidate.metrics
                  and candidate.metrics[key].fingerprint == ev.fingerprint]
        if not shared:
            return [f"{ref} and {current} share no evaluation on the same data; evaluate both "
                    f"(streetwatch eval --model ... --data REF --card NAME:VERSION)"]
        problems = []
        for key in shared:
            for cls, before in baseline.metrics[key].classes.items():
                after = candidate.metrics[key].classes.get(cls)
                if after is None:
                    problems.append(f"{key}: {cls} was not evaluated for {ref}")
                elif after.ap50 < before.ap50 - PROMOTION_TOLERANCE:
                    problems.append(f"{key}: {cls} AP50 {after.ap50:.3f} is "
                                    f"{before.ap50 - after.ap50:.3f} below {current}'s "
                                    f"{before.ap50:.3f} (tolerance {PROMOTION_TOLERANCE})")
        return problems

    def rollback(self, *, by: str) -> str:
        """Promote again the model promoted before the current one (no gate: it served
        before). Returns its ``NAME:VERSION``.

        Raises:
            RegistryError: nothing to roll back to, or that model fails verification.
        """
        current = self.promoted()
        previous = next((h["model"] for h in reversed(self.history())
                         if h["model"] != current), None)
        if previous is None:
            raise RegistryError(f"no earlier promoted model to roll back to in {self.root}")
        problems = self.verify(previous)
        if problems:
            raise RegistryError(f"{previous}: fails verification:\n  " + "\n  ".join(problems))
        self._append_history(previous, by=by, forced=False, rollback=True)
        return previous

    def _append_history(self, ref: str, *, by: str, forced: bool,
                        rollback: bool = False) -> None:
        entry = {"model": ref, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "by": by, "forced": str(forced)}
        if rollback:
            entry["rollback"] = "True"
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / REGISTRY_JSON,
                          json.dumps({"history": [*self.history(), entry]}, indent=2) + "\n")

    def promote(self, ref: str, *, by: str, force: bool = False) -> list[str]:
        """Make ``ref`` the model the service uses, if it passes the gate or ``force``.

        Returns:
            The gate's objections that ``force`` overrode (empty when it passed).

        Raises:
            RegistryError: the model fails verification, or the gate without ``force``.
        """
        problems = self.verify(ref)
        if problems:
            raise RegistryError(f"{ref}: fails verification:\n  " + "\n  ".join(problems))
        objections = self.promotion_check(ref)
        if objections and not force:
            raise RegistryError(f"{ref}: not promoted:\n  " + "\n  ".join(objections)
                                + "\n(--force promotes it anyway)")
        self._append_history(ref, by=by, forced=bool(objections))
        return objections


def default_registry_root() -> Path:
    """``$STREETWATCH_REGISTRY``, else the registry shipped in the package (``models/registry``)."""
    env = os.environ.get("STREETWATCH_REGISTRY")
    # resolve(): an editable install links this file from a build tree; the registry is
    # beside the real one
    return Path(env) if env else Path(__file__).resolve().with_name("registry")
