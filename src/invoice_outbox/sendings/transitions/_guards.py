"""The guards every edge is written under, built from the graph of `sendings/status.py`.

The bottom of the package: the other modules import these, never the other way round.  A
guard is ``status IN sources_of(target)`` (or a narrower set, checked at import to be part of
it), as an expression or as SQL text for the fixed PostgreSQL statements; `_settle` applies an
outcome of a claim (Sending → `target`) guarded by that claim.  Functions never commit.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status, in_order, sources_of

S = Status
Executor = AsyncConnection | AsyncSession


def _sources(target: Status, narrower: frozenset[Status] | None) -> list[str]:
    """`sources_of(target)` (or `narrower`, checked to be part of it), in declared order."""
    sources = sources_of(target)
    if narrower is not None:
        if not narrower <= sources:
            wrong = ", ".join(in_order(narrower - sources))
            raise ValueError(f"{wrong} cannot become {target.value} (status.TRANSITIONS)")
        sources = narrower
    return in_order(sources)


def _guard(target: Status, narrower: frozenset[Status] | None = None) -> ColumnElement[bool]:
    """``status IN sources_of(target)`` (or the `narrower` set) as a WHERE condition."""
    values = _sources(target, narrower)
    return Sending.status == values[0] if len(values) == 1 else Sending.status.in_(values)


def _sql_guard(column: str, target: Status, narrower: frozenset[Status] | None = None) -> str:
    """`_guard` as SQL text for the fixed statements."""
    values = [f"'{v}'" for v in _sources(target, narrower)]
    return f"{column} = {values[0]}" if len(values) == 1 else f"{column} IN ({', '.join(values)})"


_IN_FLIGHT: Final = frozenset({S.SENDING})
#: The guards of an attempt's outcome and of a release: from Sending only (checked at import).
_FROM_SENDING: Final = {t: _guard(t, _IN_FLIGHT) for t in (S.SENT, S.FAILED, S.ABORTED, S.PENDING)}
#: An outcome or a release ends the claim's lease.
_SETTLED: Final[dict[str, Any]] = {"lease_owner": None, "lease_expires_at": None}


async def _settle(
    connection: AsyncConnection,
    target: Status,
    sending_id: uuid.UUID,
    worker: str,
    attempt: int,
    values: dict[str, Any],
) -> bool:
    """Sending → `target`, guarded by the claim: same worker, same attempt, still Sending."""
    result = await connection.execute(
        update(Sending)
        .where(
            Sending.id == sending_id,
            _FROM_SENDING[target],
            Sending.lease_owner == worker,
            Sending.attempts == attempt,
        )
        .values(status=target.value, **values, **_SETTLED)
    )
    return bool(result.rowcount)
