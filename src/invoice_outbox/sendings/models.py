"""Sendings (the queue and the record, one table) and their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from invoice_outbox.db.base import Base, UtcDateTime
from invoice_outbox.sendings.status import SendingType, Status


def _in_list(column: str, values: type[Status] | type[SendingType]) -> str:
    quoted = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({quoted})"


_DUE = text("status IN ('Pending', 'Failed')")
_IN_FLIGHT = text("status = 'Sending'")
_ABORTED = text("aborted_at IS NOT NULL")
_NUMBERED = text("invoice_number IS NOT NULL")


class Sending(Base):
    """One sending of one invoice document (of one type) to one external system.

    The status, ``next_attempt_at`` and lease columns are what workers claim on; the same row
    is what the legacy lists read, so the queue and the record never disagree.
    """

    __tablename__ = "sendings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    practice_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    encounter_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    invoice_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    #: The practice's own reference for the invoice (optional, shown and searchable; never
    #: patient data).
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(100))
    sending_type: Mapped[str] = mapped_column(String(32), default=SendingType.INVOICE.value)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text)
    #: Normalised cause of the last failure (grouping key), set when a failure is recorded.
    cause: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Attempts since the sending was last (re)queued: what the retry policy counts.
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="SET NULL"), index=True
    )
    #: Time of the last attempt (of creation, before any attempt): SPEC's SendingTime.
    sending_time: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When it last became Aborted (kept after a resend: a later Sent is a recovery).
    aborted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: While Discarded (and after, if the invoice is then cancelled): when, by whom and why it
    #: was given up on.  A resend clears them (the audit log keeps the history).
    discarded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    discarded_by: Mapped[str | None] = mapped_column(String(200))
    discard_reason: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Sent with every attempt of this sending, so a receiver can drop duplicates.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempt_history: Mapped[list[Attempt]] = relationship(
        order_by="Attempt.number", cascade="all, delete-orphan", lazy="raise"
    )

    __table_args__ = (
        UniqueConstraint("invoice_id", "system", "sending_type"),
        UniqueConstraint("idempotency_key"),
        CheckConstraint(_in_list("status", Status), name="status"),
        CheckConstraint(_in_list("sending_type", SendingType), name="sending_type"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(
            "round_attempts >= 0 AND round_attempts <= attempts", name="round_attempts"
        ),
        # Legacy lists: one status, in SendingTime order; cost follows the rows returned.
        Index("ix_sendings_status_time", "status", "sending_time", "id"),
        # sent/sentDate/{date}: a range on sent_at, only over sent rows.
        Index(
            "ix_sendings_sent_at",
            "sent_at",
            "id",
            sqlite_where=text("sent_at IS NOT NULL"),
            postgresql_where=text("sent_at IS NOT NULL"),
        ),
        # Workers: due rows only, overall and per system (probing a system that is down).
        Index("ix_sendings_due", "next_attempt_at", sqlite_where=_DUE, postgresql_where=_DUE),
        Index(
            "ix_sendings_due_by_system",
            "system",
            "next_attempt_at",
            sqlite_where=_DUE,
            postgresql_where=_DUE,
        ),
        # In flight, by system: each lane's in-flight count at claim time, and takeover of
        # sendings whose worker died (few rows: at most the lanes' limits per worker).
        Index(
            "ix_sendings_in_flight",
            "system",
            "lease_expires_at",
            sqlite_where=_IN_FLIGHT,
            postgresql_where=_IN_FLIGHT,
        ),
        Index("ix_sendings_practice", "practice_id", "invoice_id"),
        # Search by the practice's invoice number (only rows that have one).
        Index(
            "ix_sendings_invoice_number",
            "invoice_number",
            sqlite_where=_NUMBERED,
            postgresql_where=_NUMBERED,
        ),
        # Failures grouped and filtered by cause: index reads, not text scans.
        Index("ix_sendings_status_cause", "status", "cause", "sending_time"),
        # Notifications: what aborted in a period (only rows that ever aborted).
        Index(
            "ix_sendings_aborted_at", "aborted_at", sqlite_where=_ABORTED, postgresql_where=_ABORTED
        ),
    )


class Attempt(Base):
    """One try at delivering a sending: when, how long, what came back, and why it failed."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sending_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sendings.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    #: Sent, Retryable or Permanent.
    outcome: Mapped[str] = mapped_column(String(16))
    #: HTTP status or SMTP reply code, when the receiver answered at all.
    code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))
    #: The keyed digest (`sealing.digest`, under the key that sealed the document) of the
    #: document bytes this attempt handed to the receiver: what the sending's document's
    #: ``digest`` was at delivery, so a Sent sending can be checked against what was really
    #: delivered without a plain hash that would confirm a guessed document.
    document_digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("sending_id", "number"),
        CheckConstraint("outcome IN ('Sent', 'Retryable', 'Permanent')", name="outcome"),
    )
