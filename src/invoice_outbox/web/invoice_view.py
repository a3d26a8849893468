"""What the invoice page shows of an invoice's sendings: statuses, plain words, the attempts.

Pure presentation over the domain's reads (`invoice_sendings`, `attempts_of`) and its wording
(`practice_explanation`, `describe`): nothing here queries on its own or changes anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.causes import describe, group_key
from invoice_outbox.sendings.commands import resend_sources
from invoice_outbox.sendings.invoice_history import acknowledgements_of, attempts_of
from invoice_outbox.sendings.models import Acknowledgement, Attempt, Sending
from invoice_outbox.sendings.practice_words import practice_explanation
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.holds import SystemHold, held_systems
from invoice_outbox.systems.rejections import Catalogue, load_catalogue

#: Longest reason an action form accepts (the API's `Reason` limit).
MAX_REASON: Final = 1000

#: An attempt's outcome in plain words.
OUTCOMES: Final = {
    "Sent": "Delivered",
    "Retryable": "Failed; tried again later",
    "Permanent": "Refused; not tried again automatically",
    "Rejected": "Delivered, and rejected by the recipient",
}
#: The recipient's verdict in plain words.
ACCEPTANCE_WORDS: Final = {
    "Awaiting": "Delivered; waiting for the recipient's verdict",
    "Accepted": "Accepted by the recipient",
    "Rejected": "Rejected by the recipient",
    "Overdue": "No acknowledgement yet, and it is past the deadline",
}
#: A sending's status in plain words (next to its badge).
STATUS_WORDS: Final = {
    Status.PENDING.value: "Waiting to be sent",
    Status.SENDING.value: "Being sent now",
    Status.SENT.value: "Delivered",
    Status.FAILED.value: "Failed; another attempt is scheduled",
    Status.ABORTED.value: "Aborted; no more automatic attempts",
    Status.CANCELLED.value: "Cancelled",
    Status.DISCARDED.value: "Discarded; given up on for good, no more attempts",
}


def duration_text(milliseconds: int) -> str:
    """``850 ms``, ``1.2 s``, ``30 s``: how long an attempt took."""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    return f"{seconds:.1f} s" if seconds < 10 else f"{round(seconds)} s"


@dataclass(frozen=True, slots=True)
class AttemptView:
    number: int
    started_at: datetime
    took: str
    outcome: str
    outcome_key: str
    code: int | None
    reason: str | None
    worker: str | None
    recipient_code: str | None = None
    #: The recipient's own words: only filled for admins (they may carry patient data).
    recipient_message: str | None = None


@dataclass(frozen=True, slots=True)
class AcknowledgementView:
    received_at: datetime
    accepted: bool
    code: str | None
    message: str | None
    applied: bool
    note: str | None


@dataclass(frozen=True, slots=True)
class SendingView:
    """One sending with what a reader needs: status words, why, what next, what may be done."""

    id: uuid.UUID
    practice_id: uuid.UUID
    system: str
    sending_type: str
    status: str
    status_words: str
    discarded: bool
    discarded_at: datetime | None
    discarded_by: str | None
    discard_reason: str | None
    reason: str | None
    cause_label: str | None
    explanation: str
    next_step: str
    attempt_count: int
    sending_time: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    idempotency_key: str
    attempts: list[AttemptView]
    can_resend: bool
    can_discard: bool
    acceptance: str | None = None
    acceptance_words: str | None = None
    acceptance_code: str | None = None
    acceptance_reference: str | None = None
    acceptance_due_at: datetime | None = None
    who_must_act: str | None = None
    acknowledgements: tuple[AcknowledgementView, ...] = ()


@dataclass(frozen=True, slots=True)
class InvoiceView:
    invoice_id: uuid.UUID
    encounter_id: uuid.UUID
    practice_ids: list[uuid.UUID]
    sendings: list[SendingView]


def attempt_view(attempt: Attempt, admin: bool = False) -> AttemptView:
    return AttemptView(
        number=attempt.number,
        started_at=attempt.started_at,
        took=duration_text(attempt.duration_ms),
        outcome=OUTCOMES.get(attempt.outcome, attempt.outcome),
        outcome_key=attempt.outcome.lower(),
        code=attempt.code,
        reason=attempt.reason,
        worker=attempt.worker,
        recipient_code=attempt.recipient_code,
        recipient_message=attempt.recipient_message if admin else None,
    )


def sending_view(
    sending: Sending,
    attempts: Sequence[Attempt],
    *,
    zone: tzinfo,
    now: datetime,
    admin: bool,
    hold: SystemHold | None = None,
    catalogue: Catalogue | None = None,
    acknowledgements: Sequence[Acknowledgement] = (),
) -> SendingView:
    """`sending` for the page; `admin`: the resend/discard forms are offered where they apply;
    `hold`: its system holds its queue (down or switched off), which the explanation says."""
    group = group_key(sending.status, sending.cause)
    explanation, next_step = practice_explanation(
        status=sending.status,
        cause=group,
        next_attempt_at=sending.next_attempt_at,
        sent_at=sending.sent_at,
        zone=zone,
        now=now,
        hold=hold,
        acceptance=sending.acceptance,
        system=sending.system,
        catalogue=catalogue,
    )
    info = describe(group, catalogue) if group is not None else None
    discarded = sending.status == Status.DISCARDED.value
    return SendingView(
        id=sending.id,
        practice_id=sending.practice_id,
        system=sending.system,
        sending_type=sending.sending_type,
        status=sending.status,
        status_words=STATUS_WORDS.get(sending.status, sending.status),
        discarded=discarded,
        discarded_at=sending.discarded_at,
        discarded_by=sending.discarded_by,
        discard_reason=sending.discard_reason,
        reason=sending.reason,
        cause_label=None if info is None else info.label,
        explanation=explanation,
        next_step=next_step,
        attempt_count=sending.attempts,
        sending_time=sending.sending_time,
        next_attempt_at=sending.next_attempt_at,
        sent_at=sending.sent_at,
        idempotency_key=sending.idempotency_key,
        attempts=[attempt_view(a, admin) for a in attempts],
        can_resend=admin and Status(sending.status) in resend_sources(force=False, discarded=True),
        can_discard=admin and sending.status == Status.ABORTED.value,
        acceptance=sending.acceptance,
        acceptance_words=ACCEPTANCE_WORDS.get(sending.acceptance or ""),
        acceptance_code=sending.acceptance_code,
        acceptance_reference=sending.acceptance_reference,
        acceptance_due_at=sending.acceptance_due_at,
        who_must_act=info.who if info is not None and info.rejection else None,
        acknowledgements=tuple(
            AcknowledgementView(
                a.received_at, a.accepted, a.code, a.message if admin else None, a.applied, a.note
            )
            for a in acknowledgements
        )
        if admin
        else (),
    )


async def invoice_view(
    session: AsyncSession,
    sendings: Sequence[Sending],
    *,
    zone: tzinfo,
    now: datetime,
    admin: bool,
) -> InvoiceView:
    """The page's view of an invoice's (non-empty) `sendings`, with their attempts."""
    history = await attempts_of(session, [s.id for s in sendings])
    holds = await held_systems(session)
    catalogue = await load_catalogue(session)
    acks = await acknowledgements_of(session, [s.id for s in sendings]) if admin else {}
    first = sendings[0]
    return InvoiceView(
        invoice_id=first.invoice_id,
        encounter_id=first.encounter_id,
        practice_ids=sorted({s.practice_id for s in sendings}),
        sendings=[
            sending_view(
                s,
                history[s.id],
                zone=zone,
                now=now,
                admin=admin,
                hold=holds.get(s.system),
                catalogue=catalogue,
                acknowledgements=acks.get(s.id, ()),
            )
            for s in sendings
        ],
    )
