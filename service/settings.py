"""Service settings: ``STREETWATCH_*`` environment variables (pydantic-settings).

An environment variable with the prefix that names no setting is an error, so a typo such
as ``STREETWATCH_DATABSE_URL`` fails at start instead of silently using the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streetwatch.models.files import validation_message

PREFIX = "STREETWATCH_"


class SettingsError(ValueError):
    """Settings that cannot be used; names the variable."""


class Settings(BaseSettings):
    """Everything the service reads from its environment.

    Attributes:
        data_dir: Where the embedded database, uploads and evidence live.
        database_url: SQLAlchemy URL; default SQLite at ``DATA_DIR/streetwatch.db``;
            ``postgresql+psycopg://...`` for scale.
        registry: Model registry folder (default: the one shipped in the package).
        model_kind: Which artefact of the promoted model the detectors run: ``onnx``
            (FP32) or ``int8`` (its static-quantized copy: faster on CPUs with VNNI, within
            the accuracy its card records).
        model_imgsz: Input size the detectors run the model at, instead of the one its
            card records (models are exported with dynamic height and width). Larger sees
            small and far objects better at a cost that grows with the pixels: the shipped
            model at 896 px instead of 736 scored all-class AP50 0.899 -> 0.910 on 900
            generated validation images for ~1.45x the inference time (README, "Why 736 px").
        public_url: How the dispatch system reaches this service (evidence URLs).
        dispatch_url: The city dispatch system's endpoint for confirmed cases.
        dispatch_secret: HMAC-SHA256 key signing dispatch requests and callbacks.
        dispatch_poll_s: How often the outbox is looked at.
        dispatch_backoff_s: First retry delay; it doubles per failure, up to 5 minutes.
        max_upload_bytes: Largest accepted upload.
        max_image_pixels: Largest accepted image (decompression bombs are refused).
        max_video_seconds: Longest accepted video.
        queue_limit: Queued jobs beyond which uploads get 503 with Retry-After.
        case_confidence: Confidence a detection needs to become a case candidate.
        sample_rate: Share of the frames that produced no candidate kept for reviewers to
            look for misses (active learning); 0 keeps none.
        clip_seconds: Seconds of footage before a video or camera case's last sighting
            kept as a WebM clip in its evidence (0: none; photos never have one).
        workers: Jobs run at once, each on its own detector with an equal share of the
            cores (default: one per core, at most 4). More jobs at once is more photos per
            second; 1 gives a lone long video every core.
        log_format: ``json`` (one object a line, for a log shipper) or ``text`` (plain
            lines for a terminal); see ``service/logs.py`` for the fields.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Path("streetwatch-data")
    database_url: str | None = None
    registry: Path | None = None
    model_kind: Literal["onnx", "int8"] = "onnx"
    model_imgsz: int | None = Field(default=None, ge=64, le=4096, multiple_of=32)
    public_url: str = "http://127.0.0.1:8000"
    dispatch_url: str | None = None
    dispatch_secret: SecretStr | None = None
    dispatch_poll_s: float = Field(default=1.0, gt=0)
    dispatch_backoff_s: float = Field(default=2.0, gt=0)
    max_upload_bytes: int = Field(default=500 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=60_000_000, gt=0)
    max_video_seconds: float = Field(default=3600.0, gt=0)
    queue_limit: int = Field(default=100, gt=0)
    case_confidence: float = Field(default=0.4, ge=0, le=1)
    sample_rate: float = Field(default=0.02, ge=0, le=1)
    clip_seconds: float = Field(default=6.0, ge=0, le=60)
    workers: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=64)
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _dispatch_needs_a_secret(self) -> Settings:
        if self.dispatch_url and not self.dispatch_secret:
            raise ValueError("dispatch_url needs dispatch_secret (requests are signed)")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'streetwatch.db').resolve()}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``environ`` (default: the process environment) and overrides.

        Raises:
            SettingsError: an unknown ``STREETWATCH_*`` variable or a bad value.
        """
        environ = dict(os.environ if environ is None else environ)
        known = {PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]}; known: {', '.join(sorted(known))}")
        values = {k[len(PREFIX):].lower(): v for k, v in environ.items() if k in known}
        try:
            return cls.model_validate({**values, **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = PREFIX + str(first["loc"][0]).upper() if first["loc"] else ""
            if name in environ and str(first["loc"][0]) not in overrides:
                given = "(hidden)" if "secret" in name.lower() else repr(environ[name])
                raise SettingsError(f"{name}={given}: {first['msg']}") from None
            if not first["loc"]:  # a rule across settings
                raise SettingsError(f"settings: {first['msg']}") from None
            raise SettingsError(validation_message(exc, "setting")) from None
