"""Intake's statements: reading an invoice's sendings, writing documents and new sendings.

The document write is here and only here (`document_values` makes a document row; both the
PostgreSQL statement and the Core INSERT write exactly its columns), so a change to how
documents are stored is a change to this one place.  Documents arrive sealed (`NewDocument`
holds ciphertext, nonce, key id and keyed digest: `intake_rules.Plan.document`); no plain
text is ever written.  Status writes are
`invoice_outbox.sendings.transitions`' (`intake_insert`, `insert_pending`,
`replace_document`).

PostgreSQL's `first_pass` is one fixed statement for a whole batch: it reads the invoices'
existing sendings (with their documents' key ids and keyed digests), and for the invoices that
have none yet inserts the documents and the sendings, and queues the NOTIFY that wakes workers,
in one round trip.  Rows travel as arrays (``unnest``) in a fixed order (invoice id, then
system), so the text never changes (psycopg prepares it once per connection) and two batches
that share invoices take their locks in the same order.  SQLite does the same in three statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import TextClause, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.db.waker import CHANNEL as DUE_CHANNEL
from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.holds import any_deliverable
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import SendingType


@dataclass(frozen=True, slots=True)
class SendingRow:
    """One sending as intake answers it: the legacy row's columns and the id."""

    id: uuid.UUID
    invoice_id: uuid.UUID
    system: str
    practice_id: uuid.UUID
    encounter_id: uuid.UUID
    status: str
    reason: str | None
    sending_time: datetime
    attempts: int
    sending_type: str


@dataclass(frozen=True, slots=True)
class Existing:
    """A sending found for an invoice (the latest revision of its claim at its system), with
    the key id and keyed digest of the document it holds (None: purged), its revision and the
    recipient's verdict (None: the system does not tell one, or not yet delivered)."""

    row: SendingRow
    stored: tuple[str, str] | None
    revision: int = 0
    acceptance: str | None = None


def latest(found: Sequence[Existing]) -> list[Existing]:
    """Of an invoice's sendings, the latest revision at each system (a correction after
    acceptance leaves the earlier claim, now reversed, behind), by system."""
    by_system: dict[str, Existing] = {}
    for existing in found:
        kept = by_system.get(existing.row.system)
        if kept is None or existing.revision > kept.revision:
            by_system[existing.row.system] = existing
    return [by_system[name] for name in sorted(by_system)]


def _stored(key_id: str | None, digest: str | None) -> tuple[str, str] | None:
    return None if key_id is None or digest is None else (key_id, digest)


@dataclass(frozen=True, slots=True, repr=False)
class NewDocument:
    """A sealed document to store: the columns of its row but the time (`sealing`)."""

    id: uuid.UUID
    practice_id: uuid.UUID
    invoice_id: uuid.UUID
    content_type: str
    key_id: str
    nonce: bytes
    body: bytes
    digest: str


@dataclass(frozen=True, slots=True)
class NewSending:
    """A sending to create: Pending, due now (`transitions.pending_values`)."""

    id: uuid.UUID
    practice_id: uuid.UUID
    encounter_id: uuid.UUID
    invoice_id: uuid.UUID
    system: str
    idempotency_key: str
    document_id: uuid.UUID
    invoice_number: str | None = None


#: The columns of `SendingRow`, in its order.
ROW_COLUMNS: Final = (
    Sending.id,
    Sending.invoice_id,
    Sending.system,
    Sending.practice_id,
    Sending.encounter_id,
    Sending.status,
    Sending.reason,
    Sending.sending_time,
    Sending.attempts,
    Sending.sending_type,
)

#: The documents table's columns as intake writes them, with their PostgreSQL array types.
DOCUMENT_COLUMNS: Final = {
    "id": "uuid",
    "practice_id": "uuid",
    "invoice_id": "uuid",
    "content_type": "text",
    "key_id": "text",
    "nonce": "bytea",
    "body": "bytea",
    "digest": "text",
    "created_at": "timestamptz",
}


def document_values(document: NewDocument, *, now: datetime) -> dict[str, Any]:
    """The row a document is stored as (keys: `DOCUMENT_COLUMNS`)."""
    return {
        "id": document.id,
        "practice_id": document.practice_id,
        "invoice_id": document.invoice_id,
        "content_type": document.content_type,
        "key_id": document.key_id,
        "nonce": document.nonce,
        "body": document.body,
        "digest": document.digest,
        "created_at": now,
    }


def as_row(values: Sequence[Any]) -> SendingRow:
    return SendingRow(*values[:10])


def _pending(new: NewSending, now: datetime) -> dict[str, Any]:
    return transitions.pending_values(
        id=new.id,
        practice_id=new.practice_id,
        encounter_id=new.encounter_id,
        invoice_id=new.invoice_id,
        system=new.system,
        idempotency_key=new.idempotency_key,
        document_id=new.document_id,
        invoice_number=new.invoice_number,
        now=now,
    )


async def read_existing(
    connection: AsyncConnection, invoice_ids: Sequence[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, list[Existing]]:
    """The Invoice sendings of `invoice_ids`, by invoice; `lock`: FOR UPDATE (PostgreSQL), so
    no worker claims them and no other intake changes them until the transaction ends."""
    statement = (
        select(*ROW_COLUMNS, Document.key_id, Document.digest, Sending.revision, Sending.acceptance)
        .outerjoin(Document, Document.id == Sending.document_id)
        .where(
            Sending.invoice_id.in_(list(invoice_ids)),
            Sending.sending_type == SendingType.INVOICE.value,
        )
        .order_by(Sending.invoice_id, Sending.system)
    )
    if lock:
        statement = statement.with_for_update(of=Sending)
    found: dict[uuid.UUID, list[Existing]] = {}
    for values in await connection.execute(statement):
        row = as_row(values)
        stored = _stored(values[10], values[11])
        found.setdefault(row.invoice_id, []).append(Existing(row, stored, values[12], values[13]))
    return {invoice_id: latest(rows) for invoice_id, rows in found.items()}


async def insert_documents(
    connection: AsyncConnection, documents: Sequence[NewDocument], *, now: datetime
) -> None:
    """Store `documents` (the one place documents are written; see `document_values`)."""
    if documents:
        await connection.execute(insert(Document), [document_values(d, now=now) for d in documents])


async def insert_sendings(
    connection: AsyncConnection, sendings: Sequence[NewSending], *, now: datetime
) -> list[SendingRow]:
    """Create `sendings`; those another submission made first are skipped (not returned)."""
    made = await transitions.insert_pending(
        connection, [_pending(s, now) for s in sendings], ROW_COLUMNS
    )
    return [as_row(values) for values in made]


async def discard_unused(
    connection: AsyncConnection, sending_ids: Sequence[uuid.UUID], document_id: uuid.UUID
) -> None:
    """Undo an item's writes in this transaction (it lost a race; it is then looked at again):
    the sendings it made and its document."""
    if sending_ids:
        await connection.execute(delete(Sending).where(Sending.id.in_(list(sending_ids))))
    await connection.execute(delete(Document).where(Document.id == document_id))


async def notify_workers(connection: AsyncConnection) -> None:
    """PostgreSQL: wake other processes' workers when the transaction commits."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": DUE_CHANNEL})


async def note_invoice_numbers(
    connection: AsyncConnection, numbered: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> None:
    """Set each (practice, invoice, number)'s number on the invoice's existing sendings where
    it differs.  A label only: status, due time and ``updated_at`` stay as they are."""
    if not numbered:
        return
    await connection.execute(
        update(Sending)
        .where(
            Sending.practice_id == bindparam("practice"),
            Sending.invoice_id == bindparam("invoice"),
            or_(
                Sending.invoice_number.is_(None),
                Sending.invoice_number != bindparam("number"),
            ),
        )
        .values(invoice_number=bindparam("number"))
        .execution_options(synchronize_session=False),
        [{"practice": p, "invoice": i, "number": n} for p, i, n in numbered],
    )


# The first pass -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstPassItem:
    """One invoice of a batch (each invoice once): its new document and its new sendings,
    written only if the invoice has no sendings yet."""

    invoice_id: uuid.UUID
    document: NewDocument
    sendings: tuple[NewSending, ...]


@dataclass(slots=True)
class FirstPass:
    """What the first pass found and made, by invoice."""

    existing: dict[uuid.UUID, list[Existing]]
    made: dict[uuid.UUID, list[SendingRow]]
    #: Something was made for a system that is not held: workers are worth waking (on
    #: PostgreSQL the statement has notified other processes' already).
    woke: bool = False


_DOCUMENT_ARRAYS = ", ".join(
    f"CAST(:document_{name} AS {kind}[])" for name, kind in DOCUMENT_COLUMNS.items()
)
_DOCUMENT_NAMES = ", ".join(DOCUMENT_COLUMNS)


#: PostgreSQL's first pass (see the module docstring).  Result rows: made (true: inserted now;
#: false: found), the `SendingRow` columns, the found document's key id and digest, and a
#: count that makes the NOTIFY happen once when anything was inserted.
def _first_pass_sql(*, atomic: bool) -> TextClause:
    return text(f"""
    WITH seen AS (
        SELECT s.{", s.".join(c.key for c in ROW_COLUMNS)}, d.key_id, d.digest, s.revision,
            s.acceptance
        FROM sendings AS s LEFT JOIN documents AS d ON d.id = s.document_id
        WHERE s.invoice_id = ANY(CAST(:invoices AS uuid[]))
          AND s.sending_type = '{SendingType.INVOICE.value}'
    ), fresh AS (
        SELECT i.invoice_id, i.document_id
        FROM unnest(CAST(:invoices AS uuid[]), CAST(:documents AS uuid[]))
            AS i(invoice_id, document_id)
        WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.invoice_id = i.invoice_id)
    ), stored AS (
        INSERT INTO documents ({_DOCUMENT_NAMES})
        SELECT d.* FROM unnest({_DOCUMENT_ARRAYS}) AS d({_DOCUMENT_NAMES})
        WHERE d.id IN (SELECT document_id FROM fresh)
        RETURNING id
    ), made AS ({
        transitions.intake_insert(
            "unnest(CAST(:ids AS uuid[]), CAST(:practices AS uuid[]), CAST(:encounters AS uuid[]),"
            " CAST(:targets AS uuid[]), CAST(:systems AS text[]), CAST(:keys AS text[]),"
            " CAST(:target_documents AS uuid[]), CAST(:numbers AS text[]))"
            " AS n(id, practice_id, encounter_id, invoice_id, system, key, document_id,"
            " invoice_number)"
            " WHERE n.invoice_id IN (SELECT invoice_id FROM fresh)",
            skip_existing=not atomic,
        )
    }
    ), woke AS (
        -- Held systems (switched off, down) are not worth waking anyone for.
        SELECT pg_notify('{DUE_CHANNEL}', '') WHERE EXISTS (
            SELECT 1 FROM made JOIN systems AS y ON y.name = made.system
            WHERE y.enabled AND y.circuit <> 'Down'
        )
    )
    SELECT true AS made, made.*, NULL AS key_id, NULL AS digest, 0 AS revision,
        NULL AS acceptance, (SELECT count(*) FROM woke) AS woke
    FROM made
    UNION ALL
    SELECT false, seen.*, 0 FROM seen
""")  # noqa: S608 -- only our own constants are formatted in; every datum is a parameter


#: The first pass in a transaction (a race lost is skipped: see `first_pass`), and on its own
#: in autocommit (a race lost fails the statement, so it writes all or nothing).
FIRST_PASS_SQL: Final = _first_pass_sql(atomic=False)
FIRST_PASS_ATOMIC_SQL: Final = _first_pass_sql(atomic=True)


def _parameters(items: Sequence[FirstPassItem], now: datetime) -> dict[str, Any]:
    ordered = sorted(items, key=lambda item: item.invoice_id)
    documents = [document_values(item.document, now=now) for item in ordered]
    targets = sorted(
        (s for item in ordered for s in item.sendings), key=lambda s: (s.invoice_id, s.system)
    )
    parameters: dict[str, Any] = {
        "now": now,
        "invoices": [item.invoice_id for item in ordered],
        "documents": [item.document.id for item in ordered],
        "ids": [s.id for s in targets],
        "practices": [s.practice_id for s in targets],
        "encounters": [s.encounter_id for s in targets],
        "targets": [s.invoice_id for s in targets],
        "systems": [s.system for s in targets],
        "keys": [s.idempotency_key for s in targets],
        "target_documents": [s.document_id for s in targets],
        "numbers": [s.invoice_number for s in targets],
    }
    for name in DOCUMENT_COLUMNS:
        parameters[f"document_{name}"] = [d[name] for d in documents]
    return parameters


async def first_pass(
    connection: AsyncConnection,
    items: Sequence[FirstPassItem],
    *,
    now: datetime,
    atomic: bool = False,
) -> FirstPass:
    """For each invoice of `items` (each at most once): its existing sendings; and, for those
    that had none, its document and sendings written -- skipping any a concurrent submission
    made first (compare `made` with what was asked), or with `atomic` (PostgreSQL, in
    autocommit) failing whole with an IntegrityError instead."""
    result = FirstPass(existing={}, made={})
    if not items:
        return result
    if connection.dialect.name == "postgresql":
        statement = FIRST_PASS_ATOMIC_SQL if atomic else FIRST_PASS_SQL
        rows = await connection.execute(statement, _parameters(items, now))
        for values in rows:
            row = as_row(values[1:])
            result.woke = result.woke or bool(values[15])
            if values[0]:
                result.made.setdefault(row.invoice_id, []).append(row)
            else:
                stored = _stored(values[11], values[12])
                found = Existing(row, stored, values[13], values[14])
                result.existing.setdefault(row.invoice_id, []).append(found)
        result.existing = {k: latest(rows) for k, rows in result.existing.items()}
        return result
    result.existing = await read_existing(connection, [i.invoice_id for i in items], lock=False)
    fresh = [item for item in items if item.invoice_id not in result.existing]
    await insert_documents(connection, [item.document for item in fresh], now=now)
    made = await insert_sendings(connection, [s for i in fresh for s in i.sendings], now=now)
    for row in made:
        result.made.setdefault(row.invoice_id, []).append(row)
    result.woke = await any_deliverable(connection, {row.system for row in made})
    return result
