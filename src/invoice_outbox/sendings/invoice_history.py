"""One invoice's history: its sendings (one per system and type) and every attempt of each.

Read by the API's invoice route and the dashboard's invoice page.  Nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.models import Acknowledgement, Attempt, Sending


async def invoice_sendings(
    session: AsyncSession, invoice_id: uuid.UUID, *, practices: Collection[uuid.UUID] | None
) -> list[Sending]:
    """The sendings of `invoice_id`, by system and type: only of `practices` (None: any
    practice, for admins).  Empty when there is none the caller may see."""
    statement = select(Sending).where(Sending.invoice_id == invoice_id)
    if practices is not None:
        statement = statement.where(Sending.practice_id.in_(sorted(practices)))
    statement = statement.order_by(
        Sending.system, Sending.sending_type, Sending.revision, Sending.id
    )
    return list((await session.scalars(statement)).all())


async def attempts_of(
    session: AsyncSession, sending_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Attempt]]:
    """Every attempt of each sending (first attempt first); every id is a key."""
    attempts: dict[uuid.UUID, list[Attempt]] = {sending_id: [] for sending_id in sending_ids}
    if not attempts:
        return attempts
    statement = (
        select(Attempt)
        .where(Attempt.sending_id.in_(sorted(attempts)))
        .order_by(Attempt.sending_id, Attempt.number)
    )
    for attempt in (await session.scalars(statement)).all():
        attempts[attempt.sending_id].append(attempt)
    return attempts


async def acknowledgements_of(
    session: AsyncSession, sending_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Acknowledgement]]:
    """The acknowledgements received for each sending, oldest first (admins only: they keep
    the recipient's own words)."""
    found: dict[uuid.UUID, list[Acknowledgement]] = {}
    if not sending_ids:
        return found
    statement = (
        select(Acknowledgement)
        .where(Acknowledgement.sending_id.in_(sorted(sending_ids)))
        .order_by(Acknowledgement.received_at, Acknowledgement.id)
    )
    for ack in (await session.scalars(statement)).all():
        found.setdefault(ack.sending_id, []).append(ack)
    return found
