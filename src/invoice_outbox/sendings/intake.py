"""Submitting invoices: one intake for single submissions, batches and bulk imports.

Rules (each sending is one invoice x one system x type Invoice); an item is one invoice:

- no sending yet                      → new Pending sendings, due now (**Accepted**);
- same document already queued/sent   → nothing changes (**Duplicate**), the sendings are
  answered as they are; a system the invoice did not go to yet gets a new sending (Accepted);
- corrected document, not yet delivered (Pending, Failed, Aborted, Discarded) → the document
  is replaced and the sending queued again, due now, with a fresh attempt budget and a new
  idempotency key (**Corrected**), as one conditional change: only a sending no worker holds;
- corrected document while an attempt is in flight (Sending), after delivery (Sent) or after
  cancellation → **Conflict** (nothing changes);
- another practice's invoice id, or the same invoice for another encounter → **Conflict**;
- no usable target systems, an empty document → **Invalid**.

Each item is all or nothing: its document, new sendings and replacements are written
together or not at all, and one item's refusal never touches another's.  Nothing is ever
delivered twice on purpose.

How (see `intake_store`): a first pass writes every invoice that has no sendings yet and reads
the others' sendings -- on PostgreSQL one statement for the whole batch, the common case's
only round trip.  Whatever that pass cannot settle (a correction, a new system for a known
invoice, a race lost to a concurrent identical submission) is applied item by item on rows
locked ``FOR UPDATE``, undoing the item's own writes when a concurrent change got there first
and looking again.  The systems come from the process's `SystemsDirectory`, not the database.

`submit_invoices` runs a whole list in one transaction and commits; `submit_all` is the same
inside the caller's transaction (never commits).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from invoice_outbox.errors import Conflict, Invalid, Unavailable
from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.intake_store import (
    ROW_COLUMNS,
    Existing,
    FirstPassItem,
    NewDocument,
    NewSending,
    SendingRow,
    as_row,
    discard_unused,
    first_pass,
    insert_documents,
    insert_sendings,
    notify_workers,
    read_existing,
)
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.directory import SystemsDirectory, SystemsSnapshot
from invoice_outbox.worker.waker import Waker

__all__ = [
    "MAX_SYSTEMS",
    "IntakeConflict",
    "IntakeError",
    "ItemResult",
    "Outcome",
    "SendingRow",
    "Submission",
    "submit_all",
    "submit_invoices",
]

log = logging.getLogger(__name__)
#: Most systems one invoice may name.
MAX_SYSTEMS = 50
#: Tries of a whole intake transaction that met a deadlock or a lost connection.
TRIES = 3
#: Looks at one item that kept losing races before it is answered Conflict.
ITEM_TRIES = 3
CONCURRENT = "The invoice is being submitted concurrently; try again."


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
class _Plan:
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


def _plan(index: int, submission: Submission, snapshot: SystemsSnapshot) -> _Plan:
    if not submission.document:
        raise IntakeError("Document is required (the invoice itself)")
    systems = target_systems(submission, snapshot)
    return _Plan(index, submission, systems, hashlib.sha256(submission.document).hexdigest())


def _names(rows: Sequence[SendingRow]) -> str:
    return ", ".join(row.system for row in rows)


def _first_pass_result(
    plan: _Plan, existing: list[Existing], made: list[SendingRow]
) -> ItemResult | None:
    """The item's outcome if the first pass settled it, else None (apply it on its own)."""
    if not existing:
        if len(made) == len(plan.systems):
            return plan.result(Outcome.ACCEPTED, f"queued for {_names(made)}", made)
        return None
    settled = _settled(plan, existing)
    return settled


def _settled(plan: _Plan, existing: list[Existing]) -> ItemResult | None:
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
        refusal = _refusal(Status(e.row.status), e.row.system)
        if refusal is not None:
            return plan.result(Outcome.CONFLICT, refusal)
    if not changed and all(n in found for n in plan.systems):
        rows = [e.row for e in existing]
        return plan.result(
            Outcome.DUPLICATE, "already submitted with this document; nothing changed", rows
        )
    return None


def _refusal(status: Status, system: str) -> str | None:
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


async def _apply(connection: AsyncConnection, plan: _Plan, *, now: datetime) -> ItemResult:
    """One item on its own, on its locked sendings: all of it, or nothing and why."""
    for _ in range(ITEM_TRIES):
        locked = (await read_existing(connection, [plan.invoice_id], lock=True)).get(
            plan.invoice_id, []
        )
        settled = _settled(plan, locked) if locked else None
        if settled is not None:
            return settled
        found = {e.row.system: e for e in locked}
        missing = [n for n in plan.systems if n not in found]
        changed = [found[n].row for n in plan.systems if n in found]
        changed = [r for r in changed if found[r.system].sha256 != plan.sha256]
        document = plan.document()
        await insert_documents(connection, [document], now=now)
        made = await insert_sendings(connection, plan.new_sendings(missing, document.id), now=now)
        if len(made) < len(missing):  # a concurrent submission made one first: look again
            await discard_unused(connection, [row.id for row in made], document.id)
            continue
        replaced: list[SendingRow] = []
        if changed:
            keys = {row.id: uuid.uuid4().hex for row in changed}
            rows = await transitions.replace_document(
                connection, keys, document_id=document.id, now=now, returning=ROW_COLUMNS
            )
            if not rows:  # a worker claimed one meanwhile (or it was delivered): look again
                await discard_unused(connection, [row.id for row in made], document.id)
                continue
            replaced = [as_row(values) for values in rows]
        answer = [e.row for e in locked] + made + replaced  # later rows win in `result`
        if replaced:
            reason = f"the corrected document replaces the one queued for {_names(replaced)}"
            if made:
                reason += f"; also queued for {_names(made)}"
            return plan.result(Outcome.CORRECTED, reason, answer)
        return plan.result(Outcome.ACCEPTED, f"queued for {_names(made)}", answer)
    return plan.result(Outcome.CONFLICT, CONCURRENT)


async def submit_all(
    connection: AsyncConnection,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    *,
    now: datetime,
) -> list[ItemResult]:
    """Apply `submissions` in order, in the caller's transaction; one result each, in order.

    An invoice submitted twice in the list is applied twice, in that order (the second is a
    Duplicate or a correction of the first).  Never commits.
    """
    snapshot = await directory.current(connection)
    results: list[ItemResult | None] = [None] * len(submissions)
    plans: list[_Plan] = []
    for index, submission in enumerate(submissions):
        try:
            plans.append(_plan(index, submission, snapshot))
        except IntakeError as exc:
            results[index] = ItemResult(submission.invoice_id, Outcome.INVALID, exc.message)
    first: dict[uuid.UUID, tuple[_Plan, FirstPassItem]] = {}
    later: list[_Plan] = []
    for plan in plans:
        if plan.invoice_id in first:
            later.append(plan)
            continue
        document = plan.document()
        item = FirstPassItem(
            plan.invoice_id, document, tuple(plan.new_sendings(plan.systems, document.id))
        )
        first[plan.invoice_id] = (plan, item)
    found = await first_pass(connection, [item for _, item in first.values()], now=now)
    for invoice_id, (plan, item) in first.items():
        made = found.made.get(invoice_id, [])
        settled = _first_pass_result(plan, found.existing.get(invoice_id, []), made)
        if settled is not None:
            results[plan.index] = settled
            continue
        if invoice_id not in found.existing:  # lost a race to insert: undo, then look again
            await discard_unused(connection, [row.id for row in made], item.document.id)
        later.append(plan)
    # Invoice order, then list order: locks are taken in the same order by every intake.
    applied = False
    for plan in sorted(later, key=lambda p: (p.invoice_id, p.index)):
        result = await _apply(connection, plan, now=now)
        results[plan.index] = result
        applied = applied or result.outcome in DUE
    if applied:
        await notify_workers(connection)
    return [r for r in results if r is not None]


def _unreachable(error: DBAPIError) -> bool:
    """The connection was lost or could not be made (or SQLite stayed locked)."""
    return error.connection_invalidated or (
        isinstance(error, OperationalError) and getattr(error.orig, "sqlstate", None) is None
    )


def _transient(error: DBAPIError) -> bool:
    """A deadlock, a serialisation failure or a lost connection: the whole try may be redone
    (intake is idempotent, so even a commit whose answer was lost is safe to redo)."""
    code = getattr(error.orig, "sqlstate", None)
    return code in {"40P01", "40001"} or _unreachable(error)


async def submit_invoices(
    engine: AsyncEngine,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    *,
    now: datetime,
    waker: Waker | None = None,
) -> list[ItemResult]:
    """`submit_all` in a transaction of its own, committed; this process's workers woken
    when something is due (other processes' by the NOTIFY the commit delivers).

    A try that meets a deadlock or a lost connection is redone whole, up to `TRIES` times;
    a database that stays unreachable is `Unavailable`.
    """
    for attempt in range(1, TRIES + 1):
        try:
            async with engine.begin() as connection:
                results = await submit_all(connection, directory, submissions, now=now)
        except DBAPIError as exc:
            if not _transient(exc):
                raise
            log.warning(
                "intake retried",
                extra={"action": "intake.retry", "attempt": attempt, "error": type(exc).__name__},
            )
            if attempt == TRIES:
                if _unreachable(exc):
                    raise Unavailable("the database cannot be reached now; try again") from None
                raise IntakeConflict(CONCURRENT) from None
            continue
        if waker is not None and any(r.outcome in DUE for r in results):
            waker.wake()
        return results
    raise AssertionError("unreachable")
