"""Configuration: one `Settings` object, read from ``INVOICE_OUTBOX_*`` environment variables.

Nothing is read at import time; `get_settings()` builds (and caches) the object, and callers
receive it by injection.  Invalid values fail fast with a message naming the variable.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/invoice-outbox.db"


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Africa/Johannesburg)"
        ) from exc
    return name


class Settings(BaseSettings):
    """Every setting of the service.  Environment variable = ``INVOICE_OUTBOX_`` + field name."""

    model_config = SettingsConfigDict(env_prefix="INVOICE_OUTBOX_", extra="ignore", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///path or postgresql+psycopg://user@host:port/db",
    )
    timezone: Annotated[str, AfterValidator(_check_zone)] = Field(
        default="Africa/Johannesburg",
        description="The service's time zone: XML dates and the sentDate calendar day use it.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for bearer tokens; when unset one is generated under var_dir.",
    )
    token_lifetime_seconds: int = Field(default=8 * 3600, gt=0, le=30 * 24 * 3600)
    var_dir: Path = Field(default=Path("./var"), description="Where generated local state lives.")
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    stream_batch_rows: int = Field(default=2000, gt=0, le=100_000)
    allow_private_targets: bool = Field(
        default=False,
        description="Allow systems on loopback, link-local or private addresses (dev and tests).",
    )
    sandbox: bool = Field(
        default=False,
        description="Serve /sandbox/{name}, a pretend receiver for the demo (never in production).",
    )
    worker_concurrency: int = Field(default=8, gt=0, le=512)
    lease_seconds: float = Field(default=120.0, gt=0, description="How long a claim lasts.")
    poll_seconds: float = Field(default=5.0, gt=0, description="Longest idle wait between checks.")
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    document_retention_days: float = Field(
        default=30, gt=0, description="Keep delivered or cancelled invoices' documents this long."
    )
    circuit_failure_threshold: int = Field(
        default=5, gt=0, description="Consecutive failures after which a system counts as down."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from invoice_outbox.db.urls import normalise_database_url

        return normalise_database_url(value).sync_url

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone as a tzinfo."""
        return ZoneInfo(self.timezone)


class SettingsError(Exception):
    """Raised with a readable, multi-line message when the environment holds invalid values."""


def load_settings() -> Settings:
    """Build settings from the environment, translating validation errors to `SettingsError`."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            lines.append(f"INVOICE_OUTBOX_{field.upper()}: {error['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (built once, on first use)."""
    return load_settings()
