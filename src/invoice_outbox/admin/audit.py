"""The audit log: who changed what, when, why, and which sendings it touched.

Entries are only ever inserted (the database refuses UPDATE and DELETE on the table).  An entry
is written in the same transaction as the change it records, so the log never claims a change
that was rolled back, nor misses one that was committed.  Functions never commit.

Actions: ``sendings.resend``, ``sendings.retry_all``, ``sendings.discard``,
``resend_job.start``, ``resend_job.batch``, ``resend_job.finish`` (and ``discard_job.*``),
``invoice.cancel``, ``system.put``, ``user.add``, ``user.password``, ``user.unlock``,
``practice.name``, and the dashboard's ``session.sign_in``, ``session.sign_out``,
``session.lockout``.  Each entry's affected sendings are also linked by id (`AuditLink`), so
an invoice's timeline reads what admins did to it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import AuditEntry, AuditLink
from invoice_outbox.auth.principal import Principal
from invoice_outbox.errors import InvalidParameter

#: Ids stored per entry; `affected_count` always has the full number.
MAX_AFFECTED = 1000
MAX_PAGE = 1000

ACTIONS = (
    "sendings.resend",
    "sendings.retry_all",
    "sendings.discard",
    "resend_job.start",
    "resend_job.batch",
    "resend_job.finish",
    "discard_job.start",
    "discard_job.batch",
    "discard_job.finish",
    "invoice.cancel",
    "system.put",
    "rejection.put",
    "rejection.delete",
    "user.add",
    "user.password",
    "user.unlock",
    "practice.name",
    "session.sign_in",
    "session.sign_out",
    "session.lockout",
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted when it is not a signed-in caller: the command line, or a job on behalf of
    the admin who started it."""

    name: str
    role: str


CLI = Actor(name="cli", role="cli")


def _actor(principal: Principal | Actor) -> tuple[str, str]:
    if isinstance(principal, Principal):
        return principal.subject, principal.role.value
    return principal.name, principal.role


async def record(
    session: AsyncSession,
    *,
    principal: Principal | Actor,
    action: str,
    reason: str | None,
    practice_id: uuid.UUID | None = None,
    target: str | None = None,
    affected: Sequence[uuid.UUID | str] = (),
    affected_count: int | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntry:
    """Append one entry (flushed, not committed).

    At most `MAX_AFFECTED` ids are stored; `affected_count` defaults to ``len(affected)``
    (give it when only a sample of the ids is passed).  `details` must hold no secrets and no
    patient data: names of changed fields, counts, statuses.
    """
    name, role = _actor(principal)
    entry = AuditEntry(
        time=now,
        actor=name[:200],
        actor_role=role[:16],
        action=action,
        reason=reason,
        practice_id=practice_id,
        target=None if target is None else target[:200],
        affected=[str(a) for a in affected[:MAX_AFFECTED]],
        affected_count=len(affected) if affected_count is None else affected_count,
        details=dict(details or {}),
    )
    session.add(entry)
    await session.flush()
    linked = _sending_ids(entry.affected)
    if linked:
        await session.execute(
            insert(AuditLink), [{"entry_id": entry.id, "sending_id": i} for i in linked]
        )
    return entry


def _sending_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """The affected ids that are sending ids (GUIDs), once each: an entry's links."""
    found: dict[uuid.UUID, None] = {}
    for value in values:
        try:
            found[uuid.UUID(value)] = None
        except ValueError:
            continue
    return list(found)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit route; every field optional.  `since` inclusive, `until` exclusive."""

    actor: str | None = None
    action: str | None = None
    practice_id: uuid.UUID | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class BadCursor(InvalidParameter):
    """A paging cursor (the ``cursor`` parameter) that this service did not hand out."""

    def __init__(self) -> None:
        super().__init__("cursor", "is not one this service handed out")


def encode_cursor(entry: AuditEntry) -> str:
    raw = orjson.dumps([entry.time.isoformat(), entry.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_text, entry_id = orjson.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(time_text)
        if when.tzinfo is None or not isinstance(entry_id, int):
            raise ValueError
        return when, entry_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadCursor() from None


async def query(
    session: AsyncSession, filters: AuditQuery, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """Entries matching `filters`, newest first, and the cursor of the next page (or None).

    Keyset paging on (time, id), served by the table's indexes: a page costs the same
    however deep it is.
    """
    limit = max(1, min(limit, MAX_PAGE))
    statement = select(AuditEntry)
    if filters.actor is not None:
        statement = statement.where(AuditEntry.actor == filters.actor)
    if filters.action is not None:
        statement = statement.where(AuditEntry.action == filters.action)
    if filters.practice_id is not None:
        statement = statement.where(AuditEntry.practice_id == filters.practice_id)
    if filters.target is not None:
        statement = statement.where(AuditEntry.target == filters.target)
    if filters.since is not None:
        statement = statement.where(AuditEntry.time >= filters.since)
    if filters.until is not None:
        statement = statement.where(AuditEntry.time < filters.until)
    if cursor is not None:
        after_time, after_id = decode_cursor(cursor)
        statement = statement.where(
            or_(
                AuditEntry.time < after_time,
                and_(AuditEntry.time == after_time, AuditEntry.id < after_id),
            )
        )
    statement = statement.order_by(AuditEntry.time.desc(), AuditEntry.id.desc()).limit(limit + 1)
    entries = list((await session.scalars(statement)).all())
    more = len(entries) > limit
    entries = entries[:limit]
    return entries, encode_cursor(entries[-1]) if more and entries else None


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    """The API's picture of an entry (PascalCase, in this order)."""
    return {
        "Id": entry.id,
        "Time": entry.time,
        "Actor": entry.actor,
        "ActorRole": entry.actor_role,
        "Action": entry.action,
        "Reason": entry.reason,
        "PracticeId": entry.practice_id,
        "Target": entry.target,
        "Affected": list(entry.affected or []),
        "AffectedCount": entry.affected_count,
        "Details": dict(entry.details or {}),
    }


#: The audit actions an invoice's timeline shows between its attempts.
TIMELINE_ACTIONS = (
    "sendings.resend",
    "sendings.discard",
    "sendings.retry_all",
    "resend_job.batch",
    "discard_job.batch",
    "invoice.cancel",
)


async def actions_on(
    session: AsyncSession, sending_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AuditEntry]]:
    """The `TIMELINE_ACTIONS` entries that affected each sending, oldest first (by the
    entries' links: one indexed read).  Every id is a key."""
    found: dict[uuid.UUID, list[AuditEntry]] = {i: [] for i in sending_ids}
    if not found:
        return found
    rows = await session.execute(
        select(AuditLink.sending_id, AuditEntry)
        .join(AuditEntry, AuditEntry.id == AuditLink.entry_id)
        .where(AuditLink.sending_id.in_(sorted(found)), AuditEntry.action.in_(TIMELINE_ACTIONS))
        .order_by(AuditEntry.time, AuditEntry.id)
    )
    for sending_id, entry in rows:
        found[sending_id].append(entry)
    return found
