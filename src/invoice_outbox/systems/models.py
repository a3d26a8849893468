"""Configured external systems: where sendings go, how, and whether the system is up."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from invoice_outbox.db.base import Base, UtcDateTime

JsonColumn = JSON().with_variant(JSONB(), "postgresql")


class System(Base):
    """An external system (billing system, medical-aid switch, mailbox).

    ``settings`` holds the channel's non-secret settings; ``secret`` (an auth header value or
    SMTP password) is write-only over the API and never logged.  The circuit columns record the
    system's health as seen by deliveries, so outages hold its queue instead of spending attempts.

    Each system is a *lane* (worker/claims.py): at most ``max_in_flight`` deliveries at once and,
    optionally, ``rate_per_second`` started per second, both across every worker sharing the
    database.  ``next_slot_at`` is the lane's pacing state for the rate limit (when the next
    delivery may start, less the allowed burst); ``paused_until`` holds the lane after the
    receiver asked us to wait (``Retry-After``, HTTP 429).
    """

    __tablename__ = "systems"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    secret: Mapped[str | None] = mapped_column(Text)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    retry_policy: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Healthy, Degraded (recent failures) or Down (queue held, probing).
    circuit: Mapped[str] = mapped_column(String(16), default="Healthy")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    down_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_probe_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_failure_reason: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When a delivery last got through (written at most about once a second per system).
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The distinct sendings that failed since the last success (at most the circuit's
    #: threshold): one sending failing again and again is that sending's problem, not the
    #: system's, so only distinct sendings degrade the system and open its circuit.
    failing_sendings: Mapped[list[str]] = mapped_column(
        JsonColumn, default=list, server_default="[]"
    )
    #: When the system was switched off (Enabled false); None while enabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    max_in_flight: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    next_slot_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paused_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: How the system tells its verdict: ``{"Mode": "Transport" | "Response" |
    #: "Acknowledgement", "Within": seconds, "Kind": ..., pointers/paths and code lists}``
    #: (see `systems.acceptance.AcceptanceConfig`); empty means Transport.
    acceptance_settings: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    #: Standard Webhooks secrets (``whsec_<base64>``), write-only.  Deliveries are signed with
    #: `signing_secret` (and with the previous one too until `signing_secret_previous_until`:
    #: rotation with an overlap); acknowledgements verify against `acceptance_secret` (or the
    #: previous one, likewise).
    signing_secret: Mapped[str | None] = mapped_column(Text)
    signing_secret_previous: Mapped[str | None] = mapped_column(Text)
    signing_secret_previous_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acceptance_secret: Mapped[str | None] = mapped_column(Text)
    acceptance_secret_previous: Mapped[str | None] = mapped_column(Text)
    acceptance_secret_previous_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: mTLS: a client certificate (PEM, with its chain) and its private key, write-only.
    client_certificate: Mapped[str | None] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    practices: Mapped[list[SystemPractice]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint("channel IN ('Http', 'Email')", name="channel"),
        CheckConstraint("circuit IN ('Healthy', 'Degraded', 'Down')", name="circuit"),
        CheckConstraint("timeout_seconds > 0", name="timeout"),
        CheckConstraint("max_in_flight > 0", name="max_in_flight"),
        CheckConstraint("rate_per_second IS NULL OR rate_per_second > 0", name="rate"),
    )


class SystemPractice(Base):
    """A practice whose invoices go to a system by default."""

    __tablename__ = "system_practices"

    system: Mapped[str] = mapped_column(
        String(100), ForeignKey("systems.name", ondelete="CASCADE"), primary_key=True
    )
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class SystemsVersion(Base):
    """One row: a number that every change of the systems' names, or of the practices they
    serve, increases.  Database triggers keep it (migration 0007), so no writer can forget;
    on PostgreSQL they also NOTIFY ``invoice_outbox_systems``.  Intake's cache of the systems
    (`systems.directory`) is good for as long as this number stays the same."""

    __tablename__ = "systems_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


class RejectionOverride(Base):
    """An administrator's entry of the rejection catalogue for one system and code: it adds
    to, or replaces, what the catalogue file says (`systems.rejections`)."""

    __tablename__ = "rejection_overrides"

    system: Mapped[str] = mapped_column(
        String(100), ForeignKey("systems.name", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(32))
    resend_helps: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))
