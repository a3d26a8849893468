"""Submitting an invoice: one sending per target system, idempotent, corrections replace.

Rules (each sending is one invoice x one system x type Invoice):
- no sending yet                      → a new Pending sending, due now;
- same document already queued/sent   → nothing new (the existing sending is returned);
- corrected document, not yet delivered (Pending, Failed, Aborted, Discarded) → the document
  is replaced and the sending is queued again, due now, with a fresh attempt budget;
- corrected document while an attempt is in flight → `IntakeConflict` (try again shortly);
- corrected document for a claim the recipient accepted (or is judging: Awaiting, Overdue) →
  never a second live claim: a `Cancellation` of it (revision r, naming the claim it
  reverses) due now, then a new `Invoice` of revision r + 1 that waits for the Cancellation to
  be done (delivered, and accepted where the system tells acceptance), in that order;
- corrected document after delivery to a Transport system, or after cancellation →
  `IntakeConflict`.
Nothing is ever delivered twice on purpose.  Functions never commit (`submit_idempotently`
rolls back a transaction that lost an insert race, and only that).

"Same document" is decided by keyed digests (see `sealing`): the resubmission's digest is
computed under each stored document's own key, so it holds across key rotations; the stored
ciphertext is not read.  A stored document under a key this process lacks makes the answer
unknowable: `IntakeKeyMissing` (try again), never a replacement that could deliver twice.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.errors import Conflict, Invalid
from invoice_outbox.sendings.cancellation import add_cancellation
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import DocumentKeyMissing, Keyring
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sealing import digest, new_document
from invoice_outbox.sendings.status import Acceptance, SendingType, Status
from invoice_outbox.sendings.transitions import create_pending, requeue_loaded
from invoice_outbox.systems.models import System, SystemPractice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Submission:
    """One invoice as a practice submits it."""

    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    encounter_id: uuid.UUID
    document: bytes
    content_type: str
    systems: tuple[str, ...] | None = None


class IntakeError(Invalid):
    """The submission cannot be accepted as it is (the message names the part and why)."""


class IntakeConflict(Conflict):
    """The submission contradicts the current state: the invoice's, or which systems exist and
    serve the practice (the request is sound, the state refuses it), or an identical one is
    being submitted at the same moment."""


class IntakeKeyMissing(DocumentKeyMissing):
    """A stored document of the invoice is sealed under a key this process does not hold yet,
    so whether the submission is the same document cannot be told: try again later (by then
    the key has reached this process, or an operator has been told by the log)."""

    def __init__(self) -> None:
        super().__init__(
            "The invoice's stored document cannot be compared now (this server lacks its "
            "key); try again later.",
            retry_after_seconds=30,
        )


async def _target_systems(session: AsyncSession, submission: Submission) -> list[str]:
    of_practice = SystemPractice.practice_id == submission.practice_id
    serving = set((await session.scalars(select(SystemPractice.system).where(of_practice))).all())
    if submission.systems is None:
        if not serving:
            raise IntakeConflict(
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
        raise IntakeConflict(f"unknown system(s): {', '.join(unknown)}")
    foreign = [n for n in names if n not in serving]
    if foreign:
        raise IntakeConflict(
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
    existing: dict[str, Sending] = {}
    for found in (
        await session.scalars(
            select(Sending)
            .where(
                Sending.invoice_id == submission.invoice_id,
                Sending.sending_type == SendingType.INVOICE.value,
            )
            .order_by(Sending.revision)
        )
    ).all():
        existing[found.system] = found  # the latest revision of the claim at each system
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
        elif sending.status == Status.SENT.value and sending.acceptance is not None:
            session.add(shared)
            sending = await _correct_after_acceptance(session, sending, shared, now, keyring)
        else:
            _replace_document(sending, shared, now)
            session.add(shared)
        result.append(sending)
    await session.flush()
    return result


async def submit_idempotently(
    session: AsyncSession, submission: Submission, *, now: datetime, keyring: Keyring
) -> list[Sending]:
    """`submit`, flushed; if an identical submission won a race to insert first, its rows.

    The unique (invoice, system, type) key makes the loser's INSERT fail; the session's
    transaction is then rolled back (so it must hold nothing else yet) and the submission
    made once more, which finds the winner's sendings: the idempotent answer.  Losing twice
    is an `IntakeConflict` (try again).  A stored document under a key not held is an
    `IntakeKeyMissing` (logged for the operator with the key's id; the caller is told to retry).
    """
    for last_try in (False, True):
        try:
            sendings = await submit(session, submission, now=now, keyring=keyring)
            await session.flush()
            return sendings
        except DocumentKeyMissing as exc:
            log.error(
                "document key missing at intake",
                extra={"action": "intake.key_missing", "detail": exc.message},
            )
            raise IntakeKeyMissing() from None
        except IntegrityError:
            await session.rollback()
            if last_try:
                raise IntakeConflict(
                    "The invoice is being submitted concurrently; try again."
                ) from None
    raise AssertionError("unreachable")


def _new_sending(
    submission: Submission, system: str, document_id: uuid.UUID, now: datetime
) -> Sending:
    return create_pending(
        practice_id=submission.practice_id,
        encounter_id=submission.encounter_id,
        invoice_id=submission.invoice_id,
        system=system,
        sending_type=SendingType.INVOICE,
        document_id=document_id,
        now=now,
    )


async def _correct_after_acceptance(
    session: AsyncSession,
    accepted: Sending,
    document: Document,
    now: datetime,
    keyring: Keyring,
) -> Sending:
    """A reversal of `accepted` (a Cancellation, due now), then the corrected claim (the next
    revision, waiting for the reversal).  Returns the corrected claim."""
    if accepted.acceptance == Acceptance.REJECTED.value:  # not live: a plain resend would do
        raise IntakeConflict(f"the claim at {accepted.system} was rejected; resend it")
    original = await session.scalar(
        select(Document.content_type).where(Document.id == accepted.document_id)
    )
    reversal = await add_cancellation(
        session,
        accepted,
        content_type=original or document.content_type,
        now=now,
        keyring=keyring,
        reversal=True,
    )
    if reversal.status == Status.CANCELLED.value or reversal.created_at != now:
        raise IntakeConflict(f"this invoice was cancelled for {accepted.system}")
    await session.flush()  # the reversal's id, for the claim that follows it
    corrected = create_pending(
        practice_id=accepted.practice_id,
        encounter_id=accepted.encounter_id,
        invoice_id=accepted.invoice_id,
        system=accepted.system,
        sending_type=SendingType.INVOICE,
        document_id=document.id,
        now=now,
        revision=accepted.revision + 1,
        follows=reversal.id,
    )
    session.add(corrected)
    return corrected


def _replace_document(sending: Sending, document: Document, now: datetime) -> None:
    status = Status(sending.status)
    if status is Status.PENDING and sending.follows_id is not None and not sending.next_attempt_at:
        # A corrected claim still waiting for its reversal: corrected again, it keeps waiting.
        sending.document_id = document.id
        sending.idempotency_key = uuid.uuid4().hex
        sending.updated_at = now
        return
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
    requeue_loaded(sending, now=now)
    sending.document_id = document.id
    # A corrected document is new content: a receiver must not drop it as a duplicate.
    sending.idempotency_key = uuid.uuid4().hex
