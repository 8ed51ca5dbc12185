"""Training hyperparameters: one YAML file per recipe, checked field by field.

A config holds what decides the result of a run (model, image size, epochs, ultralytics
hyperparameters, the street augmentations); the command line says which data and where the
run goes. Unknown keys are errors, so a typo never silently trains with a default.

A recipe may start from another with ``extends: NAME`` (a shipped recipe's name, or a path
relative to the extending file) and set only what differs: its ``hyp`` and ``augment``
entries are merged into the base's key by key, any other field replaces the base's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streetwatch.models.files import ConfigFileError, read_mapping, validate_mapping
from streetwatch.training.precision import Precision

# ultralytics arguments a config must not set: the wrapper owns them.
_OWNED = frozenset({
    "data", "model", "epochs", "imgsz", "batch", "project", "name", "exist_ok", "resume",
    "device", "augmentations", "save_dir", "plots", "val", "amp",
})

BUILTIN_CONFIGS = Path(__file__).resolve().with_name("configs")


class ConfigError(ConfigFileError):
    """A training config that cannot be used; the message names the file and field."""


class AugmentConfig(BaseModel):
    """Probabilities of the street-footage augmentations (0 turns one off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rain: float = Field(default=0.08, ge=0, le=1)
    fog: float = Field(default=0.06, ge=0, le=1)
    low_light: float = Field(default=0.15, ge=0, le=1)
    shadow: float = Field(default=0.10, ge=0, le=1)
    motion_blur: float = Field(default=0.15, ge=0, le=1)
    compression: float = Field(default=0.25, ge=0, le=1)
    noise: float = Field(default=0.15, ge=0, le=1)


class TrainConfig(BaseModel):
    """A training recipe.

    Attributes:
        model: ultralytics model YAML (``yolo11n.yaml``: built from scratch, nothing is
            downloaded) or a local ``.pt`` to fine-tune.
        imgsz: Training and export image size (square letterbox side).
        epochs: Length of the whole schedule; a resumed run continues towards it.
        batch: Images per batch.
        workers: Data-loader processes.
        seed: ultralytics' random seed.
        threads: torch threads for training (default: every core; ultralytics alone would
            leave one idle).
        precision: ``bf16`` (bfloat16 autocast, about twice as fast where the CPU has it
            natively), ``fp32``, or ``auto``: bf16 where native. Training runs channels
            last either way (see :mod:`streetwatch.training.precision`).
        hyp: Further ultralytics training arguments (``lr0``, ``mosaic``, ``close_mosaic`` ...).
        augment: Street augmentations applied by albumentations.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "yolo11n.yaml"
    imgsz: int = Field(default=640, ge=32, multiple_of=32)
    epochs: int = Field(default=100, ge=1)
    batch: int = Field(default=16, ge=1)
    workers: int = Field(default=2, ge=0)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    precision: Precision = "auto"
    hyp: dict[str, Any] = Field(default_factory=dict)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return TrainConfig.model_validate({**self.model_dump(), **changes})


def load_config(path: Path | None) -> TrainConfig:
    """Read a config YAML; ``None`` gives the defaults.

    A bare name such as ``street`` refers to a config shipped in ``training/configs``.

    Raises:
        ConfigFileError: naming the file and the first bad field (``ConfigError`` for a
            key the wrapper owns, or an ``extends`` that cannot be followed).
    """
    if path is None:
        return TrainConfig()
    path = _find(path, None)
    config = validate_mapping(path, _read_recipe(path, ()), TrainConfig)
    owned = sorted(_OWNED & set(config.hyp))
    if owned:
        raise ConfigError(f"{path}: field 'hyp.{owned[0]}' is set by streetwatch, not the config")
    return config


def _find(name: Path, folder: Path | None) -> Path:
    """A recipe's path (relative to ``folder`` when given), else the shipped recipe of that
    name."""
    candidate = name if folder is None or name.is_absolute() else folder / name
    if not candidate.exists() and (BUILTIN_CONFIGS / f"{name}.yaml").exists():
        return BUILTIN_CONFIGS / f"{name}.yaml"
    return candidate


def _read_recipe(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The recipe's fields, with those of the recipe it extends (checked on its own first)
    beneath them."""
    content = read_mapping(path, "config file")
    base = content.pop("extends", None)
    if base is None:
        return content
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: field 'extends': the name or path of another recipe")
    base_path = _find(Path(base), path.parent)
    if base_path.resolve() in (*chain, path.resolve()):
        raise ConfigError(f"{path}: field 'extends': {base!r} leads back to this recipe")
    inherited = _read_recipe(base_path, (*chain, path.resolve()))
    validate_mapping(base_path, inherited, TrainConfig)  # a fault in the base is named there
    for section in ("hyp", "augment"):
        mine = content.get(section)
        if isinstance(mine, dict) and isinstance(inherited.get(section), dict):
            content[section] = {**inherited[section], **mine}
    return {**inherited, **content}
