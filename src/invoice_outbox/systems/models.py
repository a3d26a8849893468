"""Configured external systems: where sendings go, how, and whether the system is up."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
    )


class SystemPractice(Base):
    """A practice whose invoices go to a system by default."""

    __tablename__ = "system_practices"

    system: Mapped[str] = mapped_column(
        String(100), ForeignKey("systems.name", ondelete="CASCADE"), primary_key=True
    )
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


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
