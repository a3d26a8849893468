"""Submitting an invoice: one sending per target system, idempotent, corrections replace.

Rules (each sending is one invoice x one system x type Invoice):
- no sending yet                      → a new Pending sending, due now;
- same document already queued/sent   → nothing new (the existing sending is returned);
- corrected document, not yet delivered (Pending, Failed, Aborted) → the document is replaced
  and the sending is queued again, due now, with a fresh attempt budget;
- corrected document while an attempt is in flight → `IntakeConflict` (try again shortly);
- corrected document after delivery (Sent) or after cancellation → `IntakeConflict`.
Nothing is ever delivered twice on purpose.  Functions never commit.

"Same document" is decided by keyed digests (see `sealing`): the resubmission's digest is
computed under each stored document's own key, so it holds across key rotations; the stored
ciphertext is not read.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sealing import digest, new_document
from invoice_outbox.sendings.status import SendingType, Status, ensure_transition
from invoice_outbox.systems.models import System, SystemPractice


@dataclass(frozen=True, slots=True)
class Submission:
    """One invoice as a practice submits it."""

    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    encounter_id: uuid.UUID
    document: bytes
    content_type: str
    systems: tuple[str, ...] | None = None


class IntakeError(ValueError):
    """The submission cannot be accepted as it is (a 400 for the caller)."""


class IntakeConflict(IntakeError):
    """The submission contradicts the invoice's current state (a 409 for the caller)."""


async def _target_systems(session: AsyncSession, submission: Submission) -> list[str]:
    of_practice = SystemPractice.practice_id == submission.practice_id
    serving = set((await session.scalars(select(SystemPractice.system).where(of_practice))).all())
    if submission.systems is None:
        if not serving:
            raise IntakeError(
                f"no systems are configured for practice {submission.practice_id}; "
                "name them in Systems or configure the practice's systems"
            )
        return sorted(serving)
    names = list(dict.fromkeys(submission.systems))
    if not names:
        raise IntakeError("Systems is empty; name at least one system, or omit Systems")
    known = set((await session.scalars(select(System.name).where(System.name.in_(names)))).all())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise IntakeError(f"unknown system(s): {', '.join(unknown)}")
    foreign = [n for n in names if n not in serving]
    if foreign:
        raise IntakeError(
            f"system(s) not configured for practice {submission.practice_id}: {', '.join(foreign)}"
        )
    return names


def _new_document(keyring: Keyring, submission: Submission, now: datetime) -> Document:
    return new_document(
        keyring,
        practice_id=submission.practice_id,
        invoice_id=submission.invoice_id,
        content_type=submission.content_type,
        body=submission.document,
        now=now,
    )


class _Digests:
    """The submission's digest under each key asked for (computed once per key)."""

    def __init__(self, keyring: Keyring, submission: Submission) -> None:
        self.keyring = keyring
        self.submission = submission
        self.by_kid: dict[str, str] = {}

    def matches(self, key_id: str, stored: str) -> bool:
        mine = self.by_kid.get(key_id)
        if mine is None:
            s = self.submission
            key = self.keyring.require(key_id)
            mine = self.by_kid[key_id] = digest(key, s.practice_id, s.invoice_id, s.document)
        return hmac.compare_digest(mine, stored)


async def submit(
    session: AsyncSession, submission: Submission, *, now: datetime, keyring: Keyring
) -> list[Sending]:
    """Create or update the invoice's sendings; return them in system order.

    Raises `DocumentKeyMissing` when a stored document of the invoice is sealed under a key
    this process does not hold (it cannot tell whether the document changed)."""
    systems = await _target_systems(session, submission)
    existing = {
        s.system: s
        for s in (
            await session.scalars(
                select(Sending).where(
                    Sending.invoice_id == submission.invoice_id,
                    Sending.sending_type == SendingType.INVOICE.value,
                )
            )
        ).all()
    }
    foreign = [s for s in existing.values() if s.practice_id != submission.practice_id]
    if foreign:
        # Invoice ids are global: never let one practice touch another's invoice.
        raise IntakeConflict(f"invoice {submission.invoice_id} belongs to another practice")
    mismatch = [s for s in existing.values() if s.encounter_id != submission.encounter_id]
    if mismatch:
        raise IntakeConflict(
            f"invoice {submission.invoice_id} was submitted for another encounter; "
            "an invoice bills exactly one encounter"
        )
    document_ids = [s.document_id for s in existing.values() if s.document_id is not None]
    stored = (
        {
            row.id: (row.key_id, row.digest)
            for row in await session.execute(
                select(Document.id, Document.key_id, Document.digest).where(
                    Document.id.in_(document_ids)
                )
            )
        }
        if document_ids
        else {}
    )
    digests = _Digests(keyring, submission)
    shared: Document | None = None
    result = []
    for system in systems:
        sending = existing.get(system)
        current = stored.get(sending.document_id) if sending and sending.document_id else None
        if sending is not None and current is not None and digests.matches(*current):
            result.append(sending)
            continue
        shared = shared or _new_document(keyring, submission, now)
        if sending is None:
            sending = _new_sending(submission, system, shared.id, now)
            session.add(shared)
            session.add(sending)
        else:
            _replace_document(sending, shared, now)
            session.add(shared)
        result.append(sending)
    await session.flush()
    return result


def _new_sending(
    submission: Submission, system: str, document_id: uuid.UUID, now: datetime
) -> Sending:
    return Sending(
        id=uuid.uuid4(),
        practice_id=submission.practice_id,
        encounter_id=submission.encounter_id,
        invoice_id=submission.invoice_id,
        system=system,
        sending_type=SendingType.INVOICE.value,
        status=Status.PENDING.value,
        attempts=0,
        round_attempts=0,
        sending_time=now,
        next_attempt_at=now,
        idempotency_key=uuid.uuid4().hex,
        document_id=document_id,
        created_at=now,
        updated_at=now,
    )


def _replace_document(sending: Sending, document: Document, now: datetime) -> None:
    status = Status(sending.status)
    if status is Status.SENDING:
        raise IntakeConflict(
            f"a delivery of this invoice to {sending.system} is in progress; "
            "send the correction again in a minute"
        )
    if status is Status.SENT:
        raise IntakeConflict(
            f"this invoice was already delivered to {sending.system}; cancel it and submit "
            "the corrected invoice under a new InvoiceId"
        )
    if status is Status.CANCELLED:
        raise IntakeConflict(f"this invoice was cancelled for {sending.system}")
    if status is not Status.PENDING:
        ensure_transition(status, Status.PENDING)
    sending.status = Status.PENDING.value
    sending.document_id = document.id
    # A corrected document is new content: a receiver must not drop it as a duplicate.
    sending.idempotency_key = uuid.uuid4().hex
    sending.round_attempts = 0
    sending.next_attempt_at = now
    sending.updated_at = now
