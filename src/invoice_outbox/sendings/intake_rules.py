"""Intake's rules: what a submission is, where it goes, and what an invoice's state allows.

No database here: `plan_of` checks a submission against the systems (`SystemsSnapshot`), and
`settled` decides from an invoice's existing sendings alone whether a submission is a
Duplicate or a Conflict, or has work to do.  `invoice_outbox.sendings.intake` applies them.

"Same document" is decided by keyed digests (`sealing.digest`): the submission's digest is
computed under each stored document's own key, so it holds across key rotations, and the
stored ciphertext is never read.  A stored document under a key this process does not hold
makes the answer unknowable: the item is refused as `IntakeKeyMissing` (try again), never
replaced (that could deliver it twice).  New documents are sealed under the current key
(`Plan.document`), so intake never stores a document in plain text.
"""

from __future__ import annotations

import enum
import hmac
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from invoice_outbox.errors import Conflict, Invalid
from invoice_outbox.sendings.intake_store import Existing, NewDocument, NewSending, SendingRow
from invoice_outbox.sendings.keyring import DocumentKeyMissing, Keyring
from invoice_outbox.sendings.sealing import digest, seal
from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.systems.directory import SystemsSnapshot

log = logging.getLogger(__name__)

#: Most systems one invoice may name.
MAX_SYSTEMS = 50


@dataclass(frozen=True, slots=True)
class Submission:
    """One invoice as a practice submits it."""

    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    encounter_id: uuid.UUID
    document: bytes
    content_type: str
    systems: tuple[str, ...] | None = None
    #: The practice's own reference (optional): a label on the invoice's sendings, not part
    #: of what is sent, so it never makes a submission a correction.
    invoice_number: str | None = None


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

    MESSAGE = (
        "The invoice's stored document cannot be compared now (this server lacks its key); "
        "try again later."
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE, retry_after_seconds=30)


class Outcome(enum.StrEnum):
    """What became of one submitted invoice (spelt as the batch answer spells it)."""

    ACCEPTED = "Accepted"  # new sendings were queued
    DUPLICATE = "Duplicate"  # the same document was submitted before: nothing changed
    CORRECTED = "Corrected"  # a corrected document replaced one not yet delivered
    CONFLICT = "Conflict"  # the invoice's state refuses it (nothing changed)
    INVALID = "Invalid"  # the submission itself is wrong (nothing changed)


#: Outcomes after which a worker has something new to deliver.
DUE: frozenset[Outcome] = frozenset({Outcome.ACCEPTED, Outcome.CORRECTED})


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One submission's outcome, why, and (unless refused) the invoice's sendings in the order
    of its target systems."""

    invoice_id: uuid.UUID
    outcome: Outcome
    reason: str
    sendings: tuple[SendingRow, ...] = ()
    #: A Conflict because a stored document's key is not held here (`IntakeKeyMissing`).
    key_missing: bool = False

    def raise_refusal(self) -> None:
        """A single submission's refusal as the domain error the front ends map."""
        if self.key_missing:
            raise IntakeKeyMissing()
        if self.outcome is Outcome.INVALID:
            raise IntakeError(self.reason)
        if self.outcome is Outcome.CONFLICT:
            raise IntakeConflict(self.reason)


class Digests:
    """A submission's keyed digest under each key asked for (computed once per key)."""

    def __init__(self, keyring: Keyring, submission: Submission) -> None:
        self.keyring = keyring
        self.submission = submission
        self._by_kid: dict[str, str] = {}

    def of(self, key_id: str) -> str:
        """The digest under key `key_id` (`DocumentKeyMissing` when that key is not held)."""
        mine = self._by_kid.get(key_id)
        if mine is None:
            s = self.submission
            key = self.keyring.require(key_id)
            mine = self._by_kid[key_id] = digest(key, s.practice_id, s.invoice_id, s.document)
        return mine

    def matches(self, existing: Existing) -> bool:
        """Whether `existing` holds this very document (False when its document was purged)."""
        if existing.stored is None:
            return False
        key_id, stored = existing.stored
        return hmac.compare_digest(self.of(key_id), stored)


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid submission, ready to write: its place in the list, systems, and digests."""

    index: int
    submission: Submission
    systems: tuple[str, ...]
    keyring: Keyring
    digests: Digests = field(compare=False)

    @property
    def invoice_id(self) -> uuid.UUID:
        return self.submission.invoice_id

    def document(self) -> NewDocument:
        """A new document row of the submission, sealed under the current key."""
        s = self.submission
        key = self.keyring.current
        document_id = uuid.uuid4()
        sealed = seal(
            key,
            document_id=document_id,
            practice_id=s.practice_id,
            invoice_id=s.invoice_id,
            content_type=s.content_type,
            plain=s.document,
        )
        return NewDocument(
            id=document_id,
            practice_id=s.practice_id,
            invoice_id=s.invoice_id,
            content_type=s.content_type,
            key_id=sealed.key_id,
            nonce=sealed.nonce,
            body=sealed.body,
            digest=sealed.digest,
        )

    def new_sendings(self, systems: Sequence[str], document_id: uuid.UUID) -> list[NewSending]:
        s = self.submission
        return [
            NewSending(
                id=uuid.uuid4(),
                practice_id=s.practice_id,
                encounter_id=s.encounter_id,
                invoice_id=s.invoice_id,
                system=system,
                idempotency_key=uuid.uuid4().hex,
                document_id=document_id,
                invoice_number=s.invoice_number,
            )
            for system in systems
        ]

    def changed(self, existing: Sequence[Existing]) -> list[Existing]:
        """Those of the plan's systems' sendings in `existing` that hold another document
        (`DocumentKeyMissing` when one's key is not held: whether it changed is unknown)."""
        wanted = set(self.systems)
        return [e for e in existing if e.row.system in wanted and not self.digests.matches(e)]

    def result(self, outcome: Outcome, reason: str, rows: Sequence[SendingRow] = ()) -> ItemResult:
        by_system = {row.system: row for row in rows}
        ordered = tuple(by_system[s] for s in self.systems if s in by_system)
        return ItemResult(self.invoice_id, outcome, reason, ordered)

    def key_missing(self, error: DocumentKeyMissing) -> ItemResult:
        """The item refused because a stored document's key is not held (logged for the
        operator with the key's id, never the document)."""
        log.error(
            "document key missing at intake",
            extra={"action": "intake.key_missing", "detail": error.message},
        )
        return ItemResult(
            self.invoice_id, Outcome.CONFLICT, IntakeKeyMissing.MESSAGE, key_missing=True
        )


def target_systems(submission: Submission, snapshot: SystemsSnapshot) -> tuple[str, ...]:
    """The systems the invoice goes to: those it names, else its practice's.

    `IntakeError` when the names themselves are wrong (empty, too many); `IntakeConflict` when
    the configuration refuses them now (none configured, unknown, or not the practice's)."""
    practice = submission.practice_id
    serving = snapshot.serving(practice)
    if submission.systems is None:
        if not serving:
            raise IntakeConflict(
                f"no systems are configured for practice {practice}; "
                "name them in Systems or configure the practice's systems"
            )
        return serving
    names = tuple(dict.fromkeys(submission.systems))
    if not names:
        raise IntakeError("Systems is empty; name at least one system, or omit Systems")
    if len(names) > MAX_SYSTEMS:
        raise IntakeError(f"Systems names {len(names)} systems; at most {MAX_SYSTEMS}")
    unknown = [n for n in names if n not in snapshot.names]
    if unknown:
        raise IntakeConflict(f"unknown system(s): {', '.join(unknown)}")
    foreign = [n for n in names if n not in serving]
    if foreign:
        raise IntakeConflict(
            f"system(s) not configured for practice {practice}: {', '.join(foreign)}"
        )
    return names


def plan_of(
    index: int, submission: Submission, snapshot: SystemsSnapshot, keyring: Keyring
) -> Plan:
    """`submission` checked and ready to write (`IntakeError` or `IntakeConflict` names what
    is wrong)."""
    if not submission.document:
        raise IntakeError("Document is required (the invoice itself)")
    systems = target_systems(submission, snapshot)
    return Plan(index, submission, systems, keyring, Digests(keyring, submission))


def names_of(rows: Sequence[SendingRow]) -> str:
    return ", ".join(row.system for row in rows)


def first_pass_result(
    plan: Plan, existing: list[Existing], made: list[SendingRow]
) -> ItemResult | None:
    """The item's outcome if the first pass settled it, else None (apply it on its own)."""
    if not existing:
        if len(made) == len(plan.systems):
            return plan.result(Outcome.ACCEPTED, f"queued for {names_of(made)}", made)
        return None
    return settled(plan, existing)


def settled(plan: Plan, existing: list[Existing]) -> ItemResult | None:
    """Conflict or Duplicate from the invoice's sendings alone; None when there is work."""
    s = plan.submission
    if any(e.row.practice_id != s.practice_id for e in existing):
        # Invoice ids are global: never let one practice touch another's invoice.
        return plan.result(Outcome.CONFLICT, f"invoice {s.invoice_id} belongs to another practice")
    if any(e.row.encounter_id != s.encounter_id for e in existing):
        return plan.result(
            Outcome.CONFLICT,
            f"invoice {s.invoice_id} was submitted for another encounter; "
            "an invoice bills exactly one encounter",
        )
    found = {e.row.system: e for e in existing}
    try:
        changed = plan.changed(existing)
    except DocumentKeyMissing as error:
        return plan.key_missing(error)
    for e in changed:
        if reversible(e):
            continue  # corrected by a reversal and a new revision (see `reversible`)
        why = refusal(Status(e.row.status), e.row.system)
        if why is not None:
            return plan.result(Outcome.CONFLICT, why)
    if not changed and all(n in found for n in plan.systems):
        rows = [e.row for e in existing]
        return plan.result(
            Outcome.DUPLICATE, "already submitted with this document; nothing changed", rows
        )
    return None


def reversible(existing: Existing) -> bool:
    """A delivered claim the recipient accepted (or is judging: Awaiting, Overdue): a
    correction never makes a second live claim of it, nor replaces it: it is reversed (a
    Cancellation naming it) and the corrected document follows as the next revision, once
    the reversal is done.  Transport systems tell no verdict: Sent stays final there."""
    return existing.row.status == Status.SENT.value and existing.acceptance in _JUDGING


#: Verdicts under which a delivered claim is live at the recipient (Rejected ones are not:
#: their status is Aborted, and a correction simply replaces them).
_JUDGING: Final = frozenset(
    {Acceptance.AWAITING.value, Acceptance.ACCEPTED.value, Acceptance.OVERDUE.value}
)


def refusal(status: Status, system: str) -> str | None:
    """Why a corrected document cannot replace a sending's in `status` (None: it can)."""
    if status is Status.SENDING:
        return (
            f"this invoice is being delivered to {system} right now (a delivery is in "
            "progress); try the correction again in a minute"
        )
    if status is Status.SENT:
        return (
            f"this invoice was already delivered to {system}; cancel it and submit the "
            "corrected invoice under a new InvoiceId"
        )
    if status is Status.CANCELLED:
        return f"this invoice was cancelled for {system}"
    return None
