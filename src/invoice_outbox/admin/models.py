"""Tables of the admin operations: the audit log, resend jobs, notification runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from invoice_outbox.db.base import Base, UtcDateTime

JsonColumn = JSON().with_variant(JSONB(), "postgresql")


class AuditEntry(Base):
    """One state-changing action by an admin or practice user.  Append-only: the database
    refuses UPDATE and DELETE on this table (triggers created by the migration)."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    #: e.g. sendings.resend, sendings.retry_all, sendings.discard, invoice.cancel, system.put,
    #: user.add, resend_job.start
    action: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    practice_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: What was acted on, by name: a system name, an invoice id, a job id.
    target: Mapped[str | None] = mapped_column(String(200))
    #: Ids of the sendings affected (at most 1,000; `affected_count` has the full number).
    affected: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    affected_count: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_time", "time", "id"),
        Index("ix_audit_entries_actor", "actor", "time"),
        Index("ix_audit_entries_action", "action", "time"),
        Index("ix_audit_entries_practice", "practice_id", "time"),
    )


class AuditLink(Base):
    """One sending an audit entry affected: what an invoice's timeline reads (by sending) to
    show who resent or discarded it, when and why.  Written with the entry, never changed."""

    __tablename__ = "audit_links"

    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("audit_entries.id", ondelete="CASCADE"), primary_key=True
    )
    sending_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, index=True)


class ResendJob(Base):
    """A bulk resend (or its dry run) worked through in the background, batch by batch.

    Only sendings unchanged since `snapshot_at` are resent, so a job never undoes what someone
    else did after the preview.  `cursor` is where the next batch starts (keyset).
    """

    __tablename__ = "resend_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    #: Running, Done or Failed.
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the job does to its members: ``resend`` (queue again) or ``discard``.
    action: Mapped[str] = mapped_column(String(16), default="resend", server_default="resend")
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The selection: {"Cause": ..., "Ids": [...], "PracticeId": ..., "System": ..., ...}.
    selection: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    snapshot_at: Mapped[datetime] = mapped_column(UtcDateTime)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    rate_per_second: Mapped[int] = mapped_column(Integer, default=500)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('Running', 'Done', 'Failed')", name="status"),
        CheckConstraint("action IN ('resend', 'discard')", name="action"),
        Index("ix_resend_jobs_status", "status", "created_at"),
    )


class NotificationRun(Base):
    """One batched notification to admins: what aborted and what recovered in a period."""

    __tablename__ = "notification_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime, unique=True)
    aborted_count: Mapped[int] = mapped_column(Integer, default=0)
    recovered_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Counts per cause group: {"http-503": {"Aborted": 4, "Recovered": 1}, ...}
    summary: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    #: Per recipient: {"webhook": "sent"|"failed: reason", "email": ...}
    deliveries: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
