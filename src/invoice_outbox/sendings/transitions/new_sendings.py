"""New sendings (no edge: they had no status before) and intake's statements.

`create_pending` and `pending_values` make a Pending sending (ORM row / Core values);
`intake_insert` is intake's PostgreSQL INSERT of the same, `insert_pending` the portable one;
`replace_document` is a correction's → Pending, all or none; `demo_sending` makes demo data
in any status.  Functions never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import SendingType, Status
from invoice_outbox.sendings.transitions._guards import Executor, _guard

S = Status


def create_pending(
    *,
    practice_id: uuid.UUID,
    encounter_id: uuid.UUID,
    invoice_id: uuid.UUID,
    system: str,
    sending_type: SendingType,
    document_id: uuid.UUID,
    now: datetime,
    revision: int = 0,
    follows: uuid.UUID | None = None,
) -> Sending:
    """A new sending, Pending and due now, with its own idempotency key (no edge: it had no
    status before).  With `follows` it waits instead (not due) until that sending is done
    (`release_followers`).  The caller adds it to the session."""
    return Sending(
        id=uuid.uuid4(),
        practice_id=practice_id,
        encounter_id=encounter_id,
        invoice_id=invoice_id,
        system=system,
        sending_type=sending_type.value,
        status=S.PENDING.value,
        attempts=0,
        round_attempts=0,
        sending_time=now,
        next_attempt_at=None if follows is not None else now,
        idempotency_key=uuid.uuid4().hex,
        document_id=document_id,
        revision=revision,
        follows_id=follows,
        created_at=now,
        updated_at=now,
    )


def pending_values(
    *,
    id: uuid.UUID,
    practice_id: uuid.UUID,
    encounter_id: uuid.UUID,
    invoice_id: uuid.UUID,
    system: str,
    idempotency_key: str,
    document_id: uuid.UUID,
    now: datetime,
    invoice_number: str | None = None,
) -> dict[str, Any]:
    """The columns of a new Invoice sending, Pending and due now (no edge: it had no status
    before), for a Core INSERT; intake's PostgreSQL statement writes the same (`INTAKE_INSERT`)."""
    return {
        "id": id,
        "practice_id": practice_id,
        "encounter_id": encounter_id,
        "invoice_id": invoice_id,
        "system": system,
        "sending_type": SendingType.INVOICE.value,
        "status": S.PENDING.value,
        "attempts": 0,
        "round_attempts": 0,
        "sending_time": now,
        "next_attempt_at": now,
        "idempotency_key": idempotency_key,
        "document_id": document_id,
        "invoice_number": invoice_number,
        "created_at": now,
        "updated_at": now,
    }


#: What intake answers for each sending (the legacy row, and the id).
INTAKE_RETURNING: Final = (
    "id, invoice_id, system, practice_id, encounter_id, status, reason, sending_time, "
    "attempts, sending_type"
)


def intake_insert(source: str, *, skip_existing: bool) -> str:
    """PostgreSQL: INSERT the new Invoice sendings described by `source` -- a FROM clause
    whose rows have ``id, practice_id, encounter_id, invoice_id, system, key, document_id,
    invoice_number`` -- Pending and due at ``:now``, as `pending_values`.  One that exists
    already (same invoice, system and type: a concurrent submission won a race) is skipped
    with `skip_existing`, else fails the statement.  Returns `INTAKE_RETURNING` of each row made."""
    conflict = (
        "ON CONFLICT (invoice_id, system, sending_type, revision) DO NOTHING"
        if skip_existing
        else ""
    )
    return f"""
        INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type,
            status, attempts, round_attempts, sending_time, next_attempt_at, idempotency_key,
            document_id, invoice_number, created_at, updated_at)
        SELECT n.id, n.practice_id, n.encounter_id, n.invoice_id, n.system,
            '{SendingType.INVOICE.value}', '{S.PENDING.value}', 0, 0, :now, :now, n.key,
            n.document_id, n.invoice_number, :now, :now
        FROM {source}
        {conflict}
        RETURNING {INTAKE_RETURNING}"""  # noqa: S608 -- `source` is our own SQL text


async def insert_pending(
    connection: AsyncConnection, rows: Sequence[Mapping[str, Any]], returning: Sequence[Any]
) -> Sequence[Row[Any]]:
    """INSERT new sendings (`pending_values` rows); one whose invoice, system and type exist
    already (a concurrent submission won the race) is skipped.  `returning` of each made."""
    if not rows:
        return []
    statement = (
        postgresql_insert(Sending)
        if connection.dialect.name == "postgresql"
        else sqlite_insert(Sending)
    )
    # Many parameter sets: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues")
    # with the statement compiled once (cached), not once per number of rows.
    result = await connection.execute(
        statement.on_conflict_do_nothing(
            index_elements=["invoice_id", "system", "sending_type", "revision"]
        ).returning(*returning),
        list(rows),
    )
    return result.all()


def demo_sending(status: Status, **columns: Any) -> Sending:
    """A sending made up in `status` with no edges behind it: demo data only."""
    return Sending(status=status.value, **columns)


#: What a corrected document may replace: a sending no worker holds that was not delivered or
#: cancelled.  A Pending one stays Pending; the others take their edge to Pending.
REPLACEABLE: Final = frozenset({S.PENDING, S.FAILED, S.ABORTED, S.DISCARDED})
_WAITING_FOLLOWER: Final = and_(
    Sending.status == S.PENDING.value,
    Sending.follows_id.is_not(None),
    Sending.next_attempt_at.is_(None),
)
_REPLACEABLE_GUARD: Final = or_(
    Sending.status == S.PENDING.value, _guard(S.PENDING, REPLACEABLE - {S.PENDING})
)


async def replace_document(
    executor: Executor,
    keys: Mapping[uuid.UUID, str],
    *,
    document_id: uuid.UUID,
    now: datetime,
    returning: Sequence[QueryableAttribute[Any]] = (Sending.id,),
) -> Sequence[Row[Any]]:
    """A corrected document: → Pending for each of the sendings `keys` names, all or none.

    Only when every one of them is `REPLACEABLE` at this moment (one UPDATE, guarded by the
    status of each row and by the count of all of them) does each get `document_id`, its new
    idempotency key from `keys` (new content: a receiver must not drop it as a repeat), a
    fresh attempt budget, due now.  Otherwise nothing changes and no row is returned: a worker
    claimed one meanwhile (Sending), or it was delivered or cancelled.  On PostgreSQL the
    caller has locked the rows (``FOR UPDATE``), so the count cannot go stale under it; on
    SQLite the statement holds the database's write lock.  Returns `returning` of each row.
    """
    ids = list(keys)
    if not ids:
        return []
    in_place = (
        select(func.count())
        .select_from(Sending)
        .where(Sending.id.in_(ids), _REPLACEABLE_GUARD)
        .scalar_subquery()
    )
    result = await executor.execute(
        update(Sending)
        .where(Sending.id.in_(ids), _REPLACEABLE_GUARD, in_place == len(ids))
        .values(
            status=S.PENDING.value,
            document_id=document_id,
            idempotency_key=case(keys, value=Sending.id),
            round_attempts=0,
            # A corrected claim still waiting for its reversal keeps waiting
            # (`release_followers` makes it due), whatever its document.
            next_attempt_at=case((_WAITING_FOLLOWER, None), else_=now),
            updated_at=now,
            discarded_at=None,
            discarded_by=None,
            discard_reason=None,
            # New content: the recipient's verdict on the old one does not carry over.
            acceptance=None,
            acceptance_code=None,
            acceptance_at=None,
            acceptance_due_at=None,
        )
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )
    return result.all()
