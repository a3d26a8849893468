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
- systems that do not exist or do not serve the practice (or none configured) → **Conflict**;
- an empty document, an empty or too long list of systems → **Invalid**;
- a stored document of the invoice sealed under a key this process does not hold →
  **Conflict** (`IntakeKeyMissing` for a single submission: 503, try again), never a
  replacement, which could deliver it twice.

Each item is all or nothing: its document, new sendings and replacements are written
together or not at all, and one item's refusal never touches another's.  Nothing is ever
delivered twice on purpose.  Documents are stored sealed under the keyring's current key
(`sealing`), and "the same document" is a keyed digest compared under each stored document's
own key (`intake_rules`).

How (see `intake_store`): a first pass writes every invoice that has no sendings yet and reads
the others' sendings -- on PostgreSQL one statement for the whole batch, the common case's
only round trip.  Whatever that pass cannot settle (a correction, a new system for a known
invoice, a race lost to a concurrent identical submission) is applied item by item on rows
locked ``FOR UPDATE``, undoing the item's own writes when a concurrent change got there first
and looking again.  The systems come from the process's `SystemsDirectory`, not the database.

`submit_invoices` runs a list and commits.  On PostgreSQL its first pass runs on its own, in
autocommit: one statement that is its own transaction, so a new invoice costs exactly one round
trip (no BEGIN, no COMMIT); written without ON CONFLICT, it writes every new invoice of the
list or, if a concurrent submission got one of them first, nothing -- and the list then goes
the careful way, in one transaction.  What the first pass leaves (corrections, new systems)
is applied in a transaction after it.  `submit_all` is the careful way inside the caller's
transaction (never commits).  The rules themselves are `intake_rules`.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from invoice_outbox.db.failures import as_unavailable, describe
from invoice_outbox.db.waker import Waker
from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.cancellation import add_cancellation
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.holds import any_deliverable
from invoice_outbox.sendings.intake_rules import (
    DUE,
    MAX_SYSTEMS,
    IntakeConflict,
    IntakeError,
    IntakeKeyMissing,
    ItemResult,
    Outcome,
    Plan,
    Submission,
    first_pass_result,
    names_of,
    plan_of,
    reversible,
    settled,
    target_systems,
)
from invoice_outbox.sendings.intake_store import (
    ROW_COLUMNS,
    FirstPassItem,
    NewDocument,
    SendingRow,
    as_row,
    discard_unused,
    first_pass,
    insert_documents,
    insert_sendings,
    note_invoice_numbers,
    notify_workers,
    read_existing,
)
from invoice_outbox.sendings.keyring import DocumentKeyMissing, Keyring
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import SendingType
from invoice_outbox.systems.directory import SystemsDirectory, SystemsSnapshot

__all__ = [
    "MAX_SYSTEMS",
    "IntakeConflict",
    "IntakeError",
    "IntakeKeyMissing",
    "ItemResult",
    "Outcome",
    "SendingRow",
    "Submission",
    "submit_all",
    "submit_invoices",
    "target_systems",
]

log = logging.getLogger(__name__)
#: Tries of an intake transaction that met a deadlock or a lost connection.
TRIES = 3
#: Looks at one item that kept losing races before it is answered Conflict.
ITEM_TRIES = 3
CONCURRENT = "The invoice is being submitted concurrently; try again."
T = TypeVar("T")


async def _apply(connection: AsyncConnection, plan: Plan, *, now: datetime) -> ItemResult:
    """One item on its own, on its locked sendings: all of it, or nothing and why."""
    for _ in range(ITEM_TRIES):
        locked = (await read_existing(connection, [plan.invoice_id], lock=True)).get(
            plan.invoice_id, []
        )
        refused = settled(plan, locked) if locked else None
        if refused is not None:
            return refused
        found = {e.row.system for e in locked}
        missing = [n for n in plan.systems if n not in found]
        try:
            differing = plan.changed(locked)
        except DocumentKeyMissing as error:
            return plan.key_missing(error)
        changed = [e.row for e in differing if not reversible(e)]
        reversing = [e.row for e in differing if reversible(e)]
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
        if reversing:
            replaced += await _reverse_and_follow(
                connection, reversing, document, keyring=plan.keyring, now=now
            )
        answer = [e.row for e in locked] + made + replaced  # later rows win in `result`
        if replaced:
            reason = f"the corrected document replaces the one queued for {names_of(replaced)}"
            if made:
                reason += f"; also queued for {names_of(made)}"
            return plan.result(Outcome.CORRECTED, reason, answer)
        return plan.result(Outcome.ACCEPTED, f"queued for {names_of(made)}", answer)
    return plan.result(Outcome.CONFLICT, CONCURRENT)


async def _reverse_and_follow(
    connection: AsyncConnection,
    accepted: Sequence[SendingRow],
    document: NewDocument,
    *,
    keyring: Keyring,
    now: datetime,
) -> list[SendingRow]:
    """Correct claims the recipients accepted (or are judging): for each, a Cancellation
    naming it (due now, sealed as every document is), then the corrected claim as the next
    revision, waiting until the Cancellation is done (`transitions.release_followers`).
    Returns the corrected claims' rows.  Runs in the caller's transaction (the rows are
    locked by `read_existing`)."""
    made: list[SendingRow] = []
    async with AsyncSession(bind=connection) as session:  # joins the caller's transaction
        for row in accepted:
            claim = await session.get_one(Sending, row.id)
            original = await session.scalar(
                select(Document.content_type).where(Document.id == claim.document_id)
            )
            reversal = await add_cancellation(
                session,
                claim,
                content_type=original or document.content_type,
                now=now,
                keyring=keyring,
                reversal=True,
            )
            await session.flush()  # the reversal's id, for the claim that follows it
            corrected = transitions.create_pending(
                practice_id=claim.practice_id,
                encounter_id=claim.encounter_id,
                invoice_id=claim.invoice_id,
                system=claim.system,
                sending_type=SendingType.INVOICE,
                document_id=document.id,
                now=now,
                revision=claim.revision + 1,
                follows=reversal.id,
            )
            session.add(corrected)
            await session.flush()
            made.append(as_row([getattr(corrected, c.key) for c in ROW_COLUMNS]))
    return made


@dataclass(slots=True)
class _Work:
    """A list of submissions on its way: results so far, the first pass's items (each
    invoice once), and the plans left for `_rest`."""

    results: list[ItemResult | None]
    first: dict[uuid.UUID, tuple[Plan, FirstPassItem]] = field(default_factory=dict)
    later: list[Plan] = field(default_factory=list)
    #: Plans whose invoice had sendings already: their number (if given) is noted on them.
    numbered: list[Plan] = field(default_factory=list)
    #: Something became due for a system that is not held: wake this process's workers.
    wake: bool = False

    def done(self) -> list[ItemResult]:
        return [r for r in self.results if r is not None]


def _prepare(
    snapshot: SystemsSnapshot, submissions: Sequence[Submission], keyring: Keyring
) -> _Work:
    """Check every submission; each invoice's first occurrence goes to the first pass."""
    work = _Work(results=[None] * len(submissions))
    for index, submission in enumerate(submissions):
        try:
            plan = plan_of(index, submission, snapshot, keyring)
        except IntakeError as exc:
            work.results[index] = ItemResult(submission.invoice_id, Outcome.INVALID, exc.message)
            continue
        except IntakeConflict as exc:
            work.results[index] = ItemResult(submission.invoice_id, Outcome.CONFLICT, exc.message)
            continue
        if plan.invoice_id in work.first:
            work.later.append(plan)  # the same invoice again: after the first, in order
            continue
        document = plan.document()
        sendings = tuple(plan.new_sendings(plan.systems, document.id))
        work.first[plan.invoice_id] = (plan, FirstPassItem(plan.invoice_id, document, sendings))
    return work


async def _first(connection: AsyncConnection, work: _Work, *, now: datetime, atomic: bool) -> None:
    """The first pass; what it settles is answered, the rest left for `_rest`."""
    items = [item for _, item in work.first.values()]
    found = await first_pass(connection, items, now=now, atomic=atomic)
    work.wake = work.wake or found.woke
    for invoice_id, (plan, item) in work.first.items():
        made = found.made.get(invoice_id, [])
        result = first_pass_result(plan, found.existing.get(invoice_id, []), made)
        if result is not None:
            work.results[plan.index] = result
            if result.outcome is Outcome.DUPLICATE:
                work.numbered.append(plan)
            continue
        if invoice_id not in found.existing:  # lost a race to insert: undo, then look again
            await discard_unused(connection, [row.id for row in made], item.document.id)
        work.later.append(plan)


#: Outcomes after which the invoice's sendings carry the submission's number.
_NUMBERED = frozenset({Outcome.ACCEPTED, Outcome.CORRECTED, Outcome.DUPLICATE})


async def _note_numbers(connection: AsyncConnection, work: _Work) -> None:
    """The invoice numbers of `work.numbered` (where given) on their invoices' sendings; a
    submission without one leaves a number given earlier alone."""
    numbered: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    for plan in sorted(work.numbered, key=lambda p: p.index):  # the list's last number wins
        if plan.submission.invoice_number is not None:
            numbered[plan.submission.practice_id, plan.invoice_id] = plan.submission.invoice_number
    work.numbered.clear()
    await note_invoice_numbers(connection, [(p, i, n) for (p, i), n in numbered.items()])


async def _rest(connection: AsyncConnection, work: _Work, *, now: datetime) -> None:
    """Each plan the first pass left, on its own locked rows."""
    due: set[str] = set()
    # Invoice order, then list order: locks are taken in the same order by every intake.
    for plan in sorted(work.later, key=lambda p: (p.invoice_id, p.index)):
        result = await _apply(connection, plan, now=now)
        work.results[plan.index] = result
        if result.outcome in DUE:
            due.update(row.system for row in result.sendings)
        if result.outcome in _NUMBERED:
            work.numbered.append(plan)
    await _note_numbers(connection, work)
    # Work for held systems (switched off, down) waits without waking anyone.
    if await any_deliverable(connection, due):
        work.wake = True
        await notify_workers(connection)


async def submit_all(
    connection: AsyncConnection,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    *,
    now: datetime,
    keyring: Keyring,
) -> list[ItemResult]:
    """Apply `submissions` in order, in the caller's transaction; one result each, in order.

    An invoice submitted twice in the list is applied twice, in that order (the second is a
    Duplicate or a correction of the first).  New documents are sealed under `keyring`'s
    current key.  Never commits.
    """
    work = await _careful(connection, directory, submissions, now=now, keyring=keyring)
    return work.done()


async def _careful(
    connection: AsyncConnection,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    *,
    now: datetime,
    keyring: Keyring,
) -> _Work:
    work = _prepare(await directory.current(connection), submissions, keyring)
    await _first(connection, work, now=now, atomic=False)
    await _rest(connection, work, now=now)
    return work


#: SQLSTATEs of a transaction that lost to a concurrent one (deadlock, serialisation).
RACES = frozenset({"40P01", "40001"})


async def _retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`, redone up to `TRIES` times while it fails transiently -- a database error
    `db.failures.as_unavailable` calls connection-level or busy (a lost connection, a
    deadlock, a lock timeout, SQLite locked); intake is idempotent, so even a commit whose
    answer was lost is safe to redo.  Then one that kept losing races is a Conflict ("try
    again"), any other the domain's `Unavailable`.  Other errors propagate at once."""
    for number in range(1, TRIES + 1):
        try:
            return await attempt()
        except IntegrityError:
            raise
        except DBAPIError as exc:
            unavailable = as_unavailable(exc)
            if unavailable is None:
                raise
            log.warning(
                "intake retried",
                extra={"action": "intake.retry", "attempt": number, "error": describe(exc)},
            )
            if number == TRIES:
                if getattr(exc.orig, "sqlstate", None) in RACES:
                    raise IntakeConflict(CONCURRENT) from None
                raise unavailable from exc
    raise AssertionError("unreachable")


async def _first_on_its_own(
    engine: AsyncEngine,
    autocommit: AsyncEngine | None,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    now: datetime,
    keyring: Keyring,
) -> _Work | None:
    """PostgreSQL: the first pass as one autocommitted statement; None when a concurrent
    submission made one of the invoices first (nothing was written: go the careful way)."""
    async with (autocommit or engine).connect() as connection:
        if autocommit is None:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        work = _prepare(await directory.current(connection), submissions, keyring)
        try:
            await _first(connection, work, now=now, atomic=True)
        except IntegrityError:
            return None
        return work


async def _rest_in_transaction(engine: AsyncEngine, work: _Work, now: datetime) -> None:
    async with engine.begin() as connection:
        await _rest(connection, work, now=now)


async def _all_in_transaction(
    engine: AsyncEngine,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    now: datetime,
    keyring: Keyring,
) -> _Work:
    async with engine.begin() as connection:
        return await _careful(connection, directory, submissions, now=now, keyring=keyring)


async def submit_invoices(
    engine: AsyncEngine,
    directory: SystemsDirectory,
    submissions: Sequence[Submission],
    *,
    now: datetime,
    keyring: Keyring,
    waker: Waker | None = None,
    slots: contextlib.AbstractAsyncContextManager[object] | None = None,
    autocommit: AsyncEngine | None = None,
) -> list[ItemResult]:
    """Apply `submissions` and commit (see the module docstring); this process's workers are
    woken when something is due (other processes' by the NOTIFY the commit delivers).

    `slots` (a semaphore) bounds how many intakes use a connection at once, so a burst waits
    in line instead of opening and closing connections beyond the pool; `autocommit` is an
    engine of the same database whose connections are in autocommit (PostgreSQL).  A try that
    meets a deadlock or a lost connection is redone, up to `TRIES` times; a database that
    stays unreachable is `Unavailable`.  New documents are sealed under `keyring`'s current
    key.
    """
    async with slots or contextlib.nullcontext():
        work: _Work | None = None
        if engine.dialect.name == "postgresql":
            first = await _retrying(
                lambda: _first_on_its_own(engine, autocommit, directory, submissions, now, keyring)
            )
            if first is not None:
                if first.later or any(p.submission.invoice_number for p in first.numbered):
                    await _retrying(lambda: _rest_in_transaction(engine, first, now))
                work = first
        if work is None:
            work = await _retrying(
                lambda: _all_in_transaction(engine, directory, submissions, now, keyring)
            )
    if waker is not None and work.wake:
        waker.wake()
    return work.done()
