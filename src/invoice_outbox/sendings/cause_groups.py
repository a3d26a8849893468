"""Failures grouped by cause: counts, first/last seen, systems and practices affected.

`cause_groups` counts Failed and Aborted sendings by cause (not Discarded ones: they were given
up on): one GROUP BY over the (status, cause, sending_time) index for counts and first/last
seen, one pass for the systems and practices affected, and one index lookup per group for its
most recent reason.  What a cause means in words is `invoice_outbox.sendings.causes`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.causes import FAILURE_STATUSES, UNKNOWN, CauseInfo, describe
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import AnySelect, cause_clause, selection_clauses
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.rejections import Catalogue

__all__ = [
    "CauseGroup",
    "cause_groups",
    "counts_statement",
    "failure_statuses",
    "group_view",
    "latest_reason_statement",
    "spread_statement",
]


@dataclass(slots=True)
class CauseGroup:
    """Failed and Aborted sendings with one cause, and where they happened."""

    cause: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    systems: set[str] = field(default_factory=set)
    practices: set[uuid.UUID] = field(default_factory=set)

    @property
    def info(self) -> CauseInfo:
        return describe(self.cause)

    def sorted_practices(self, cap: int) -> list[uuid.UUID]:
        """Up to `cap` of the practices affected, in a stable order."""
        return sorted(self.practices)[:cap]


def failure_statuses(selection: SendingFilter) -> tuple[Status, ...]:
    """The failure statuses `selection` asks for (both when it names none)."""
    wanted = selection.statuses or frozenset(FAILURE_STATUSES)
    return tuple(s for s in FAILURE_STATUSES if s in wanted)


def _without_statuses_and_causes(selection: SendingFilter) -> SendingFilter:
    return SendingFilter(
        practices=selection.practices,
        systems=selection.systems,
        sending_types=selection.sending_types,
        invoice_ids=selection.invoice_ids,
        sending_ids=selection.sending_ids,
        since=selection.since,
        until=selection.until,
        text=selection.text,
    )


def _failure_clauses(selection: SendingFilter) -> list[ColumnElement[bool]]:
    """The Failed/Aborted sendings `selection` asks for, by status, filters and cause."""
    statuses = [s.value for s in failure_statuses(selection)]
    rest = _without_statuses_and_causes(selection)
    clauses = [Sending.status.in_(statuses), *selection_clauses(rest)]
    if selection.causes:
        clauses.append(cause_clause(selection.causes))
    return clauses


def counts_statement(selection: SendingFilter) -> AnySelect:
    """Counts, first and last SendingTime per (status, cause): the (status, cause) index."""
    clauses = _failure_clauses(selection)
    return (
        select(
            Sending.status,
            Sending.cause,
            func.count().label("count"),
            func.min(Sending.sending_time).label("first_seen"),
            func.max(Sending.sending_time).label("last_seen"),
        )
        .where(*clauses)
        .group_by(Sending.status, Sending.cause)
    )


def spread_statement(selection: SendingFilter) -> AnySelect:
    """The distinct (cause, system, practice) of the same sendings: who is affected."""
    clauses = _failure_clauses(selection)
    return (
        select(Sending.cause, Sending.system, Sending.practice_id)
        .where(*clauses)
        .group_by(Sending.cause, Sending.system, Sending.practice_id)
    )


def latest_reason_statement(
    selection: SendingFilter, keys: Sequence[tuple[str, str | None]]
) -> AnySelect:
    """The most recent reason of each (status, cause): one backward index read per key."""
    rest = selection_clauses(_without_statuses_and_causes(selection))
    branches = []
    for status, cause in keys:
        match = Sending.cause.is_(None) if cause is None else Sending.cause == cause
        branch = (
            select(Sending.cause, Sending.reason, Sending.sending_time)
            .where(Sending.status == status, match, *rest)
            .order_by(Sending.sending_time.desc())
            .limit(1)
        )
        branches.append(select(branch.subquery()))
    if len(branches) == 1:
        return branches[0]
    return select(union_all(*branches).subquery())


#: Union branches per statement (SQLite allows 500 terms in a compound SELECT).
_LOOKUPS_PER_STATEMENT = 100


async def cause_groups(connection: AsyncConnection, selection: SendingFilter) -> list[CauseGroup]:
    """Failed and Aborted sendings matching `selection`, grouped by cause.

    `selection.statuses` may narrow to Failed or Aborted (other statuses are ignored); a cause
    of `UNKNOWN` selects failures recorded without one.  Largest group first.
    """
    groups: dict[str, CauseGroup] = {}
    keys: list[tuple[str, str | None]] = []
    for status, cause, count, first_seen, last_seen in await connection.execute(
        counts_statement(selection)
    ):
        group = groups.setdefault(cause or UNKNOWN, CauseGroup(cause or UNKNOWN))
        group.count += count
        group.statuses[status] = group.statuses.get(status, 0) + count
        group.first_seen = (
            first_seen if group.first_seen is None else min(group.first_seen, first_seen)
        )
        group.last_seen = last_seen if group.last_seen is None else max(group.last_seen, last_seen)
        keys.append((status, cause))
    if not groups:
        return []
    for cause, system, practice_id in await connection.execute(spread_statement(selection)):
        found = groups.get(cause or UNKNOWN)
        if found is not None:  # None: a row added between the two reads (counted next time)
            found.systems.add(system)
            found.practices.add(practice_id)
    latest: dict[str, datetime] = {}
    for start in range(0, len(keys), _LOOKUPS_PER_STATEMENT):
        chunk = keys[start : start + _LOOKUPS_PER_STATEMENT]
        for cause, reason, when in await connection.execute(
            latest_reason_statement(selection, chunk)
        ):
            name = cause or UNKNOWN
            if name in groups and (name not in latest or when > latest[name]):
                latest[name] = when
                groups[name].reason = reason
    return sorted(groups.values(), key=lambda g: (-g.count, g.cause))


def group_view(
    group: CauseGroup,
    *,
    practice_cap: int,
    statuses: Iterable[Status],
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """One group as the API's CauseGroup shape (PascalCase, in this order)."""
    info = describe(group.cause, catalogue)
    return {
        "Cause": group.cause,
        "Count": group.count,
        "Reason": group.reason or info.label,
        "Label": info.label,
        "FirstSeen": group.first_seen,
        "LastSeen": group.last_seen,
        "Statuses": {s.value: group.statuses.get(s.value, 0) for s in statuses},
        "Systems": sorted(group.systems),
        "SystemCount": len(group.systems),
        "Practices": group.sorted_practices(practice_cap),
        "PracticeCount": len(group.practices),
        "Retryable": info.retryable,
        "Meaning": info.explanation,
        "Fix": info.next_step,
        "WhoMustAct": info.who,
        "ResendHelps": info.resend_helps,
        "Known": info.known,
        "ResendAll": not info.needs_correction,
    }
