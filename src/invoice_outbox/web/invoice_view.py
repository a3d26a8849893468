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

from invoice_outbox.admin.audit import actions_on
from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.admin.notifications import notified_aborts
from invoice_outbox.sendings.causes import CauseInfo, describe, group_key
from invoice_outbox.sendings.commands import resend_sources
from invoice_outbox.sendings.holds import SystemHold, held_fields, held_systems
from invoice_outbox.sendings.invoice_history import acknowledgements_of, attempts_of
from invoice_outbox.sendings.models import Acknowledgement, Attempt, Sending
from invoice_outbox.sendings.practice_words import practice_explanation
from invoice_outbox.sendings.status import Status
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
class ActionView:
    """Something a person (or their job) did to the sending: who, when, what, why."""

    at: datetime
    actor: str
    words: str
    reason: str | None


#: An audit action as a line of the timeline.
ACTION_WORDS: Final = {
    "sendings.resend": "Resent",
    "sendings.discard": "Discarded (given up on)",
    "sendings.retry_all": "Resent with every failed invoice (retry all)",
    "resend_job.batch": "Resent in a bulk resend",
    "discard_job.batch": "Discarded in a bulk discard",
    "invoice.cancel": "Invoice cancelled",
}
GAVE_UP: Final = "Failed; gave up (no more automatic attempts)"


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
    #: Attempts and people's actions, oldest first (the timeline's rows).
    events: list[AttemptView | ActionView]
    can_resend: bool
    can_discard: bool
    #: Waiting because its system is switched off or down: why, and since when.
    held_reason: str | None = None
    held_since: datetime | None = None
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
    invoice_number: str | None
    encounter_id: uuid.UUID
    practice_ids: list[uuid.UUID]
    sendings: list[SendingView]


def attempt_view(attempt: Attempt, *, gave_up: bool = False, admin: bool = False) -> AttemptView:
    """`gave_up`: the last attempt before the sending was Aborted reads "gave up", not
    "tried again later"; `admin`: the recipient's own words are shown (patient data)."""
    outcome = OUTCOMES.get(attempt.outcome, attempt.outcome)
    if gave_up and attempt.outcome == "Retryable":
        outcome = GAVE_UP
    return AttemptView(
        number=attempt.number,
        started_at=attempt.started_at,
        took=duration_text(attempt.duration_ms),
        outcome=outcome,
        outcome_key=attempt.outcome.lower(),
        code=attempt.code,
        reason=attempt.reason,
        worker=attempt.worker,
        recipient_code=attempt.recipient_code,
        recipient_message=attempt.recipient_message if admin else None,
    )


def _events(
    attempts: Sequence[Attempt], actions: Sequence[AuditEntry], status: str, admin: bool
) -> tuple[list[AttemptView], list[AttemptView | ActionView]]:
    """The attempts (the last one "gave up" when the sending is Aborted or was discarded
    after it) and the timeline: attempts and actions merged by time."""
    last = attempts[-1].number if attempts else None
    ended = status in (Status.ABORTED.value, Status.DISCARDED.value)
    views = [attempt_view(a, gave_up=ended and a.number == last, admin=admin) for a in attempts]
    done = [
        ActionView(e.time, e.actor, ACTION_WORDS.get(e.action, e.action), e.reason) for e in actions
    ]
    merged: list[AttemptView | ActionView] = [*views, *done]
    merged.sort(key=lambda v: v.started_at if isinstance(v, AttemptView) else v.at)
    return views, merged


def admin_words(sending: Sending, info: CauseInfo | None, now: datetime) -> tuple[str, str]:
    """(What happened, What next) in an administrator's words."""
    status, system = sending.status, sending.system
    if status == Status.ABORTED.value and info is not None:
        if info.retryable:
            return (
                f"{info.label}: its attempts are spent.",
                f"Resend it once {system} is answering again, or discard it.",
            )
        return (
            f"{info.label}: {system} refused it, and resending will not change that.",
            "Tell the practice what to fix (they see it in their view), or discard it.",
        )
    if status == Status.FAILED.value and info is not None:
        return f"{info.label}.", "Another attempt is scheduled; nothing to do yet."
    if status == Status.DISCARDED.value:
        return "Given up on for good.", "Nothing, unless it must still be sent: then resend it."
    return STATUS_WORDS.get(status, status) + ".", "Nothing to do."


def sending_view(
    sending: Sending,
    attempts: Sequence[Attempt],
    *,
    zone: tzinfo,
    now: datetime,
    admin: bool,
    hold: SystemHold | None = None,
    actions: Sequence[AuditEntry] = (),
    told: bool = False,
    catalogue: Catalogue | None = None,
    acknowledgements: Sequence[Acknowledgement] = (),
) -> SendingView:
    """`sending` for the page; `admin`: the resend/discard forms are offered where they apply,
    and the words are an administrator's (else a practice's); `hold`: its system holds its
    queue (down or switched off); a sending waiting for it is shown as held (why, since when),
    which the explanation says too; `actions`: the audit entries that changed it (the timeline
    shows them between the attempts)."""
    delivered = sending.status == Status.SENT.value
    group = None if delivered else group_key(sending.status, sending.cause)
    held = held_fields(
        status=sending.status,
        lease_expires_at=sending.lease_expires_at,
        waiting_since=sending.sending_time,
        hold=hold,
        now=now,
    )
    if not held["Held"]:
        hold = None
    explanation, next_step = practice_explanation(
        status=sending.status,
        cause=group,
        next_attempt_at=sending.next_attempt_at,
        sent_at=sending.sent_at,
        zone=zone,
        now=now,
        hold=hold,
        admin_told=told,
        acceptance=sending.acceptance,
        system=sending.system,
        catalogue=catalogue,
    )
    info = describe(group, catalogue) if group is not None else None
    if (
        admin
        and hold is None
        and sending.status
        in (
            Status.ABORTED.value,
            Status.FAILED.value,
            Status.DISCARDED.value,
        )
    ):
        explanation, next_step = admin_words(sending, info, now)
    attempt_views, events = _events(attempts, actions, sending.status, admin)
    discarded = sending.status == Status.DISCARDED.value
    words = STATUS_WORDS.get(sending.status, sending.status)
    if hold is not None:
        words = f"Held: {hold.reason}"
    return SendingView(
        id=sending.id,
        practice_id=sending.practice_id,
        system=sending.system,
        sending_type=sending.sending_type,
        status=sending.status,
        status_words=words,
        discarded=discarded,
        discarded_at=sending.discarded_at,
        discarded_by=sending.discarded_by,
        discard_reason=sending.discard_reason,
        reason=None if delivered else sending.reason,
        cause_label=None if info is None else info.label,
        explanation=explanation,
        next_step=next_step,
        attempt_count=sending.attempts,
        sending_time=sending.sending_time,
        next_attempt_at=sending.next_attempt_at,
        sent_at=sending.sent_at,
        idempotency_key=sending.idempotency_key,
        attempts=attempt_views,
        events=events,
        can_resend=admin and Status(sending.status) in resend_sources(force=False, discarded=True),
        can_discard=admin and sending.status == Status.ABORTED.value,
        held_reason=held["HeldReason"],
        held_since=held["HeldSince"],
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
    actions = await actions_on(session, [s.id for s in sendings])
    holds = await held_systems(session)
    told = await notified_aborts(
        await session.connection(), [(s.id, s.aborted_at) for s in sendings]
    )
    catalogue = await load_catalogue(session)
    acks = await acknowledgements_of(session, [s.id for s in sendings]) if admin else {}
    first = sendings[0]
    return InvoiceView(
        invoice_id=first.invoice_id,
        invoice_number=first.invoice_number,
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
                actions=actions[s.id],
                told=s.id in told,
                catalogue=catalogue,
                acknowledgements=acks.get(s.id, ()),
            )
            for s in sendings
        ],
    )
