"""Sendings (the queue and the record, one table) and their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
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
from invoice_outbox.sendings.status import Acceptance, SendingType, Status


def _in_list(column: str, values: type[Status] | type[SendingType] | type[Acceptance]) -> str:
    quoted = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({quoted})"


_DUE = text("status IN ('Pending', 'Failed')")
_IN_FLIGHT = text("status = 'Sending'")
_ABORTED = text("aborted_at IS NOT NULL")
_NUMBERED = text("invoice_number IS NOT NULL")
_AWAITING = text("acceptance = 'Awaiting'")
_JUDGED = text("acceptance IS NOT NULL")
_REFERENCED = text("acceptance_reference IS NOT NULL")
_FOLLOWS = text("follows_id IS NOT NULL")


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
    #: The recipient's verdict (`Acceptance`), NULL for Transport systems and before delivery;
    #: with the recipient's code, its reference for the claim, and when the verdict came.
    acceptance: Mapped[str | None] = mapped_column(String(16))
    acceptance_code: Mapped[str | None] = mapped_column(String(64))
    acceptance_reference: Mapped[str | None] = mapped_column(String(200))
    acceptance_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: While Awaiting: when it becomes Overdue (the system's AcknowledgementWithin).
    acceptance_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: 0 for an invoice's first claim at a system; a correction after acceptance adds a
    #: Cancellation of revision r and an Invoice of revision r + 1.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The sending this one waits for (the Cancellation a corrected claim follows): it is not
    #: due (next_attempt_at NULL) until that one is done.
    follows_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempt_history: Mapped[list[Attempt]] = relationship(
        order_by="Attempt.number", cascade="all, delete-orphan", lazy="raise"
    )

    __table_args__ = (
        UniqueConstraint("invoice_id", "system", "sending_type", "revision"),
        UniqueConstraint("idempotency_key"),
        CheckConstraint(_in_list("status", Status), name="status"),
        CheckConstraint(
            f"acceptance IS NULL OR {_in_list('acceptance', Acceptance)}", name="acceptance"
        ),
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
        # The overview's verdict counts: only sendings of systems that tell acceptance.
        Index(
            "ix_sendings_acceptance", "acceptance", sqlite_where=_JUDGED, postgresql_where=_JUDGED
        ),
        # The overdue check: sendings awaiting a verdict, by deadline.
        Index(
            "ix_sendings_awaiting",
            "acceptance_due_at",
            sqlite_where=_AWAITING,
            postgresql_where=_AWAITING,
        ),
        # Acknowledgements naming the recipient's own reference.
        Index(
            "ix_sendings_reference",
            "system",
            "acceptance_reference",
            sqlite_where=_REFERENCED,
            postgresql_where=_REFERENCED,
        ),
        Index(
            "ix_sendings_follows", "follows_id", sqlite_where=_FOLLOWS, postgresql_where=_FOLLOWS
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
    #: Sent, Retryable, Permanent or Rejected (delivered, and refused in the answer).
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
    #: Response-mode systems: the verdict code found in the answer, and the recipient's own
    #: words (capped, control characters removed).  The words may carry patient data: shown
    #: to administrators only, never logged, never put in a reason.
    recipient_code: Mapped[str | None] = mapped_column(String(64))
    recipient_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("sending_id", "number"),
        CheckConstraint(
            "outcome IN ('Sent', 'Retryable', 'Permanent', 'Rejected')", name="outcome"
        ),
    )


class Acknowledgement(Base):
    """One acknowledgement a recipient sent for a sending (`POST api/v1/billing/
    acknowledgements/{system}`), applied or not: a repeat, or one contradicting the verdict
    already recorded, is kept with `applied` false and a `note` saying why."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sending_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sendings.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(200))
    #: The recipient's own words (capped, cleaned): administrators only, never logged.
    message: Mapped[str | None] = mapped_column(Text)
    applied: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(300))


class WebhookReceipt(Base):
    """A webhook-id already received from a system (replay protection), kept for a while
    longer than the timestamp tolerance: an older message is refused for its timestamp."""

    __tablename__ = "webhook_receipts"

    system: Mapped[str] = mapped_column(String(100), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
