"""Resending or discarding one sending, as an admin or a practice user asks.

Both lock the sending, refuse what does not apply with a `ResendRefused` the caller can show
(`SendingNotFound` alike for missing and for another practice's, `ResendConflict` with the
reason, `ForceNotAllowed`), change it through
`invoice_outbox.sendings.commands` and write the audit entry.  Functions never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import audit
from invoice_outbox.admin.resends import (
    DiscardedResendNotAllowed,
    ForceNotAllowed,
    ResendConflict,
    SendingNotFound,
)
from invoice_outbox.auth.principal import Principal
from invoice_outbox.sendings.commands import discard, requeue, resend_sources
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status

__all__ = ["discard_one", "resend_one", "sending_view"]


async def _visible_sending(
    session: AsyncSession, principal: Principal, sending_id: uuid.UUID
) -> Sending:
    """The sending, locked for the change; 404 alike for missing and for another practice's."""
    sending = await session.scalar(
        select(Sending).where(Sending.id == sending_id).with_for_update()
    )
    if sending is None or not principal.may_access(sending.practice_id):
        raise SendingNotFound(sending_id)
    return sending


def _why_not_resendable(sending: Sending) -> str:
    status = Status(sending.status)
    if status is Status.SENT:
        when = sending.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC") if sending.sent_at else "earlier"
        return (
            f"The sending was already delivered to {sending.system} ({when}); it is not sent "
            'again unless you ask for it with "Force": true.'
        )
    if status is Status.PENDING:
        return "The sending is already queued (Pending); it will be attempted when due."
    if status is Status.SENDING:
        return "The sending is being delivered right now; wait for the outcome."
    if status is Status.DISCARDED:
        return "The sending was discarded; only an admin can send it again."
    return "The invoice was cancelled; its sendings are not sent again."


async def resend_one(
    session: AsyncSession,
    *,
    principal: Principal,
    sending_id: uuid.UUID,
    reason: str,
    force: bool,
    now: datetime,
) -> tuple[Sending, str]:
    """Queue one sending again, due now.  Returns it and its previous status.

    Admins: Failed, Aborted and Discarded (it is named), Sent with `force`.
    Practice users: their practices' Failed and Aborted ones; `force` and a Discarded one are
    for admins (403).
    """
    if force and not principal.is_admin:
        raise ForceNotAllowed("Only admins may force a resend of a delivered sending.")
    sending = await _visible_sending(session, principal, sending_id)
    previous = sending.status
    if previous == Status.DISCARDED.value and not principal.is_admin:
        raise DiscardedResendNotAllowed(
            "Only admins may resend a discarded sending; ask your administrator."
        )
    sources = resend_sources(force=force, discarded=principal.is_admin)
    if Status(previous) not in sources:
        raise ResendConflict(_why_not_resendable(sending))
    moved = await requeue(session, [sending_id], sources=sources, now=now)
    if not moved:  # pragma: no cover -- the row is locked (PostgreSQL) or writes serialise
        raise ResendConflict("The sending changed meanwhile; try again.")
    await session.refresh(sending)
    forced = previous == Status.SENT.value
    await audit.record(
        session,
        principal=principal,
        action="sendings.resend",
        reason=reason,
        practice_id=sending.practice_id,
        target=str(sending_id),
        affected=[sending_id],
        details={
            "PreviousStatus": previous,
            "Forced": forced,
            "WasDiscarded": previous == Status.DISCARDED.value,
        },
        now=now,
    )
    return sending, previous


async def discard_one(
    session: AsyncSession,
    *,
    principal: Principal,
    sending_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> tuple[Sending, str | None]:
    """Give up on an Aborted sending for good: it becomes Discarded (see `commands.discard`).
    Returns it and the reason it had (the failure that made someone give up)."""
    sending = await _visible_sending(session, principal, sending_id)
    status = Status(sending.status)
    if status is Status.DISCARDED:
        raise ResendConflict(
            f"The sending was already discarded (by {sending.discarded_by}: "
            f"{sending.discard_reason})."
        )
    if status is not Status.ABORTED:
        raise ResendConflict(
            f"Only Aborted sendings can be discarded; this one is {status.value}."
            + (" It will be attempted again automatically." if status is Status.FAILED else ""),
        )
    previous_reason = sending.reason
    if not await discard(session, sending_id, actor=principal.subject, reason=reason, now=now):
        raise ResendConflict("The sending changed meanwhile; try again.")  # pragma: no cover
    await session.refresh(sending)
    await audit.record(
        session,
        principal=principal,
        action="sendings.discard",
        reason=reason,
        practice_id=sending.practice_id,
        target=str(sending_id),
        affected=[sending_id],
        details={"PreviousReason": previous_reason, "Cause": sending.cause},
        now=now,
    )
    return sending, previous_reason


def sending_view(sending: Sending, previous_status: str) -> dict[str, Any]:
    return {
        "SendingId": sending.id,
        "PracticeId": sending.practice_id,
        "InvoiceId": sending.invoice_id,
        "System": sending.system,
        "SendingType": sending.sending_type,
        "PreviousStatus": previous_status,
        "Status": sending.status,
        "Reason": sending.reason,
        "SendingAttempts": sending.attempts,
        "NextAttemptAt": sending.next_attempt_at,
        "DiscardedAt": sending.discarded_at,
        "DiscardedBy": sending.discarded_by,
        "DiscardReason": sending.discard_reason,
    }
