"""Configuration: one `Settings` object, read from ``INVOICE_OUTBOX_*`` environment variables.

Nothing is read at import time; `get_settings()` builds (and caches) the object, and callers
receive it by injection.  Invalid values fail fast with a message naming the variable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from invoice_outbox.key_entries import parse_entries

DEFAULT_DATABASE_URL = "sqlite:///./var/invoice-outbox.db"


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Africa/Johannesburg)"
        ) from exc
    return name


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_address(address: str) -> str:
    """An address, optionally with a display name ("Outbox <outbox@example.org>")."""
    _, parsed = parseaddr(address)
    if "@" not in parsed or " " in parsed or _CONTROL.search(address):
        raise ValueError(f"{address!r} is not an e-mail address")
    return address.strip()


def _split_addresses(value: object) -> object:
    """A comma-separated list from the environment (or a sequence in code) as a tuple."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence):
        return tuple(value)
    return value


def _check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError(
            "put credentials in INVOICE_OUTBOX_NOTIFY_WEBHOOK_AUTH_HEADER/_VALUE, not in the URL"
        )
    return url


def _check_header_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


EmailAddresses = Annotated[
    tuple[Annotated[str, AfterValidator(_check_address)], ...],
    NoDecode,
    BeforeValidator(_split_addresses),
]


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
    document_keys: SecretStr | None = Field(
        default=None,
        description="Keys that seal invoice documents at rest: kid:base64key[,kid:base64key...] "
        "(32-byte keys; the first encrypts, the others only decrypt).  When unset, a key file "
        "is generated under var_dir (document-keys).",
    )
    var_dir: Path = Field(default=Path("./var"), description="Where generated local state lives.")
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    intake_concurrency: int = Field(
        default=16,
        gt=0,
        le=256,
        description="Submissions (single or batch) using a database connection at once; more "
        "wait in line (the pool holds 20 connections: more would open and close connections).",
    )
    max_batch_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="The body limit of a batch submission (up to 1,000 invoices).",
    )
    stream_batch_rows: int = Field(default=2000, gt=0, le=100_000)
    allow_private_targets: bool = Field(
        default=False,
        description="Allow systems on loopback, link-local or private addresses (dev and tests).",
    )
    sandbox: bool = Field(
        default=False,
        description="Serve /sandbox/{name}, a pretend receiver for the demo (never in production).",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Logs as JSON lines (for machines) or as short text lines (a console).",
    )
    log_sandbox_requests: bool = Field(
        default=False,
        description="Log the sandbox's own request lines too (the demo's receiver; noisy).",
    )
    worker_max_in_flight: int = Field(
        default=256,
        gt=0,
        le=4096,
        description="Deliveries one worker has in flight at once, over all systems (each is an "
        "open connection waiting on a receiver, not CPU); every system's own MaxInFlight also "
        "applies.",
    )
    worker_concurrency: int | None = Field(
        default=None,
        gt=0,
        le=4096,
        description="The older name of worker_max_in_flight: used as the cap when set and "
        "worker_max_in_flight is not.",
    )
    lease_seconds: float = Field(default=120.0, gt=0, description="How long a claim lasts.")
    poll_seconds: float = Field(default=5.0, gt=0, description="Longest idle wait between checks.")
    database_peer_timeout_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "PostgreSQL: a connection whose other end stays silent this long is given up, and "
            "a session idle inside a transaction this long is ended (its locks freed); 0: never."
        ),
    )
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    document_retention_days: float = Field(
        default=30, gt=0, description="Keep delivered or cancelled invoices' documents this long."
    )
    circuit_failure_threshold: int = Field(
        default=5, gt=0, description="Consecutive failures after which a system counts as down."
    )
    # Acceptance beyond transport (acknowledgements, overdue verdicts).
    webhook_tolerance_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="An acknowledgement's webhook-timestamp may be this far from our clock.",
    )
    acceptance_check_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often sendings awaiting a verdict past their deadline become Overdue.",
    )

    # The dashboard's sign-in (web/): sessions and the slow-down after failed sign-ins.
    session_idle_seconds: int = Field(
        default=8 * 3600,
        gt=0,
        le=30 * 24 * 3600,
        description="A dashboard session ends after this long without a request.",
    )
    login_max_failures: int = Field(
        default=5,
        gt=0,
        description="Failed sign-ins for one user name after which it is locked for a while.",
    )
    login_max_failures_per_client: int = Field(
        default=20,
        gt=0,
        description="Failed sign-ins from one client address after which it is locked.",
    )
    login_lockout_seconds: int = Field(
        default=15 * 60,
        gt=0,
        le=24 * 3600,
        description="The first lock-out's length; each further run of failures doubles it.",
    )

    # Notifications to admins (admin/notifications.py): what aborted and what recovered,
    # batched, by webhook and/or e-mail.  Nothing is sent when neither is configured.
    # (Field order matters: a field's validator sees only the fields above it.)
    notify_webhook_url: Annotated[str, AfterValidator(_check_webhook_url)] | None = Field(
        default=None,
        description="Admin notifications are POSTed here as a small JSON document (optional).",
    )
    notify_webhook_auth_header: Annotated[str, AfterValidator(_check_header_name)] | None = Field(
        default=None,
        description="Header name sent with each notification POST, e.g. Authorization.",
    )
    notify_webhook_auth_value: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="Value of notify_webhook_auth_header, e.g. 'Bearer ...' (both or neither).",
    )
    notify_email_from: Annotated[str, AfterValidator(_check_address)] | None = Field(
        default=None, description="Sender address of notification e-mails."
    )
    notify_smtp_host: str | None = Field(
        default=None, description="SMTP server for notification e-mails."
    )
    notify_smtp_port: int = Field(
        default=587, gt=0, le=65535, description="Port of notify_smtp_host."
    )
    notify_smtp_starttls: bool = Field(
        default=True,
        description="Send notification e-mails only after STARTTLS (false: plain SMTP).",
    )
    notify_smtp_username: str | None = Field(
        default=None, description="SMTP login for notification e-mails (optional)."
    )
    notify_smtp_password: SecretStr | None = Field(
        default=None, description="Password of notify_smtp_username."
    )
    notify_email_to: EmailAddresses = Field(
        default=(),
        description="Admin mailboxes for notifications, comma-separated (optional); needs "
        "notify_email_from and notify_smtp_host.",
    )
    notify_interval_seconds: float = Field(
        default=900.0,
        gt=0,
        description="At most one notification per this many seconds; each counts what "
        "happened since the previous one.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from invoice_outbox.db.urls import normalise_database_url

        return normalise_database_url(value).sync_url

    @field_validator("document_keys")
    @classmethod
    def _check_document_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_entries(value.get_secret_value())  # ValueError names the entry, not the key
        return value

    @field_validator("notify_webhook_auth_value")
    @classmethod
    def _check_webhook_auth(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if "notify_webhook_auth_header" not in info.data:
            return value  # the header itself was invalid; that error is reported
        if (info.data["notify_webhook_auth_header"] is None) != (value is None):
            raise ValueError(
                "set both INVOICE_OUTBOX_NOTIFY_WEBHOOK_AUTH_HEADER and "
                "INVOICE_OUTBOX_NOTIFY_WEBHOOK_AUTH_VALUE, or neither"
            )
        secret = value.get_secret_value() if value is not None else ""
        if not secret.isascii() or any(c in secret for c in "\r\n\0"):
            raise ValueError("must be ASCII without line breaks (it is sent as an HTTP header)")
        return value

    @field_validator("notify_smtp_password")
    @classmethod
    def _check_smtp_password(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and info.data.get("notify_smtp_username") is None:
            raise ValueError("needs INVOICE_OUTBOX_NOTIFY_SMTP_USERNAME")
        return value

    @field_validator("notify_email_to")
    @classmethod
    def _check_email_to(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        needed = ("notify_email_from", "notify_smtp_host")
        if any(name not in info.data for name in needed):
            return value  # one of them was invalid; that error is reported
        if value and not all(info.data[name] for name in needed):
            raise ValueError(
                "needs INVOICE_OUTBOX_NOTIFY_EMAIL_FROM and INVOICE_OUTBOX_NOTIFY_SMTP_HOST"
            )
        return value

    @property
    def worker_cap(self) -> int:
        """Deliveries a worker may have in flight at once: ``worker_max_in_flight`` when given,
        else the older ``worker_concurrency`` when given, else the default (256)."""
        if "worker_max_in_flight" in self.model_fields_set or self.worker_concurrency is None:
            return self.worker_max_in_flight
        return self.worker_concurrency

    @property
    def notifications_enabled(self) -> bool:
        """Whether any admin notification recipient (webhook or mailbox) is configured."""
        return self.notify_webhook_url is not None or bool(self.notify_email_to)

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
