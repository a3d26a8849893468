"""Read-side queries over sendings.  Builders return statements; nothing here commits."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, or_, select

from invoice_outbox.sendings.filters import SendingFilter, filter_clauses
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status

#: A SELECT of any row shape (SQLAlchemy 2.1 types rows as variadic tuples).
AnySelect = Select[*tuple[Any, ...]]

#: The columns of a legacy InvoiceSendingStatusVo row, in the positional order of legacy.rows.
STATUS_VO_COLUMNS = (
    Sending.practice_id,
    Sending.encounter_id,
    Sending.invoice_id,
    Sending.reason,
    Sending.status,
    Sending.system,
    Sending.sending_time,
    Sending.attempts,
    Sending.sending_type,
)


def status_vo_rows(status: Status) -> AnySelect:
    """Every sending in `status`, oldest SendingTime first (served by ix_sendings_status_time)."""
    return (
        select(*STATUS_VO_COLUMNS)
        .where(Sending.status == status.value)
        .order_by(Sending.sending_time, Sending.id)
    )


def sent_between(
    start: datetime, end: datetime, practices: Collection[uuid.UUID] | None
) -> AnySelect:
    """Sendings that reached Sent in [start, end), optionally only of `practices`, in order."""
    statement = select(*STATUS_VO_COLUMNS).where(
        Sending.sent_at >= start, Sending.sent_at < end, Sending.status == Status.SENT.value
    )
    if practices is not None:
        statement = statement.where(Sending.practice_id.in_(list(practices)))
    return statement.order_by(Sending.sent_at, Sending.id)


#: The cause group of failures recorded without a cause (and of any recorded as "unknown").
UNKNOWN_CAUSE: Final = "unknown"
_FAILURES = (Status.FAILED.value, Status.ABORTED.value, Status.DISCARDED.value)


def cause_clause(causes: Collection[str]) -> ColumnElement[bool]:
    """Sendings whose cause is one of `causes`; `UNKNOWN_CAUSE` also selects Failed, Aborted
    and Discarded sendings that have no cause (never Sent or Pending ones, whose cause is
    empty)."""
    named = sorted(c for c in causes if c != UNKNOWN_CAUSE)
    if UNKNOWN_CAUSE not in causes:
        return Sending.cause.in_(named)
    without = and_(Sending.cause.is_(None), Sending.status.in_(_FAILURES))
    return or_(Sending.cause.in_([*named, UNKNOWN_CAUSE]), without)


def selection_clauses(selection: SendingFilter) -> list[ColumnElement[bool]]:
    """`filter_clauses`, with the cause group `UNKNOWN_CAUSE` understood (see `cause_clause`)."""
    if UNKNOWN_CAUSE not in selection.causes:
        return filter_clauses(selection)
    clauses = filter_clauses(dataclasses.replace(selection, causes=frozenset()))
    clauses.append(cause_clause(selection.causes))
    return clauses
