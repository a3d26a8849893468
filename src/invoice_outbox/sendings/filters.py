"""Selecting sendings: one filter value shared by lists, cause groups and bulk resends.

A filter is a plain value; `filter_clauses` turns it into SQL conditions that the indexes on
(status, sending_time), (status, cause, sending_time) and (practice_id, invoice_id) serve.
Every field is optional: an empty filter selects everything.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import SHOWN_BY_DEFAULT, SendingType, Status


@dataclass(frozen=True, slots=True)
class SendingFilter:
    """Which sendings.  `practices` None = every practice (admins); a set = only those.

    `since`/`until` bound SendingTime (inclusive, exclusive); `text` is a case-insensitive
    substring of the Reason.
    """

    practices: frozenset[uuid.UUID] | None = None
    systems: frozenset[str] = frozenset()
    sending_types: frozenset[SendingType] = frozenset()
    statuses: frozenset[Status] = frozenset()
    causes: frozenset[str] = frozenset()
    invoice_ids: frozenset[uuid.UUID] = frozenset()
    sending_ids: frozenset[uuid.UUID] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def restricted_to(self, practices: frozenset[uuid.UUID] | None) -> SendingFilter:
        """This filter, narrowed to what a caller may see (None: no restriction, admins)."""
        if practices is None:
            return self
        allowed = practices if self.practices is None else self.practices & practices
        return SendingFilter(
            practices=allowed,
            systems=self.systems,
            sending_types=self.sending_types,
            statuses=self.statuses,
            causes=self.causes,
            invoice_ids=self.invoice_ids,
            sending_ids=self.sending_ids,
            since=self.since,
            until=self.until,
            text=self.text,
        )


def shown_by_default(selection: SendingFilter) -> SendingFilter:
    """`selection` as a worklist reads it: naming no status means every status but Discarded
    (given up on for good); ``status=Discarded`` shows those."""
    if selection.statuses:
        return selection
    return dataclasses.replace(selection, statuses=SHOWN_BY_DEFAULT)


def filter_clauses(selection: SendingFilter) -> list[ColumnElement[bool]]:
    """WHERE conditions for `selection` (AND them together)."""
    clauses: list[ColumnElement[bool]] = []
    if selection.practices is not None:
        clauses.append(Sending.practice_id.in_(sorted(selection.practices)))
    if selection.systems:
        clauses.append(Sending.system.in_(sorted(selection.systems)))
    if selection.sending_types:
        clauses.append(Sending.sending_type.in_(sorted(t.value for t in selection.sending_types)))
    if selection.statuses:
        clauses.append(Sending.status.in_(sorted(s.value for s in selection.statuses)))
    if selection.causes:
        clauses.append(Sending.cause.in_(sorted(selection.causes)))
    if selection.invoice_ids:
        clauses.append(Sending.invoice_id.in_(sorted(selection.invoice_ids)))
    if selection.sending_ids:
        clauses.append(Sending.id.in_(sorted(selection.sending_ids)))
    if selection.since is not None:
        clauses.append(Sending.sending_time >= selection.since)
    if selection.until is not None:
        clauses.append(Sending.sending_time < selection.until)
    if selection.text:
        escaped = selection.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(Sending.reason.ilike(f"%{escaped}%", escape="\\"))
    return clauses
