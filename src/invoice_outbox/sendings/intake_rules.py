"""Intake's rules: what a submission is, where it goes, and what an invoice's state allows.

No database here: `plan_of` checks a submission against the systems (`SystemsSnapshot`), and
`settled` decides from an invoice's existing sendings alone whether a submission is a
Duplicate or a Conflict, or has work to do.  `invoice_outbox.sendings.intake` applies them.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from invoice_outbox.errors import Conflict, Invalid
from invoice_outbox.sendings.intake_store import Existing, NewDocument, NewSending, SendingRow
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.directory import SystemsSnapshot

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


class IntakeError(Invalid):
    """The submission cannot be accepted as it is (the message names the part and why)."""


class IntakeConflict(Conflict):
    """The submission contradicts the invoice's current state, or an identical one is being
    submitted at the same moment."""


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

    def raise_refusal(self) -> None:
        """A single submission's refusal as the domain error the front ends map."""
        if self.outcome is Outcome.INVALID:
            raise IntakeError(self.reason)
        if self.outcome is Outcome.CONFLICT:
            raise IntakeConflict(self.reason)


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid submission, ready to write: its place in the list, systems, and document."""

    index: int
    submission: Submission
    systems: tuple[str, ...]
    sha256: str

    @property
    def invoice_id(self) -> uuid.UUID:
        return self.submission.invoice_id

    def document(self) -> NewDocument:
        s = self.submission
        return NewDocument(uuid.uuid4(), self.sha256, s.content_type, s.document)

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
            )
            for system in systems
        ]

    def result(self, outcome: Outcome, reason: str, rows: Sequence[SendingRow] = ()) -> ItemResult:
        by_system = {row.system: row for row in rows}
        ordered = tuple(by_system[s] for s in self.systems if s in by_system)
        return ItemResult(self.invoice_id, outcome, reason, ordered)


def target_systems(submission: Submission, snapshot: SystemsSnapshot) -> tuple[str, ...]:
    """The systems the invoice goes to: those it names, else its practice's (`IntakeError`
    names what is wrong: none configured, empty, unknown, or not the practice's)."""
    practice = submission.practice_id
    serving = snapshot.serving(practice)
    if submission.systems is None:
        if not serving:
            raise IntakeError(
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
        raise IntakeError(f"unknown system(s): {', '.join(unknown)}")
    foreign = [n for n in names if n not in serving]
    if foreign:
        raise IntakeError(f"system(s) not configured for practice {practice}: {', '.join(foreign)}")
    return names


def plan_of(index: int, submission: Submission, snapshot: SystemsSnapshot) -> Plan:
    """`submission` checked and ready to write (`IntakeError` names what is wrong)."""
    if not submission.document:
        raise IntakeError("Document is required (the invoice itself)")
    systems = target_systems(submission, snapshot)
    return Plan(index, submission, systems, hashlib.sha256(submission.document).hexdigest())


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
    changed = [found[n] for n in plan.systems if n in found and found[n].sha256 != plan.sha256]
    for e in changed:
        why = refusal(Status(e.row.status), e.row.system)
        if why is not None:
            return plan.result(Outcome.CONFLICT, why)
    if not changed and all(n in found for n in plan.systems):
        rows = [e.row for e in existing]
        return plan.result(
            Outcome.DUPLICATE, "already submitted with this document; nothing changed", rows
        )
    return None


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
