"""Reading one page of a filtered list of sendings, for every list of every front end.

`read_list_page` is the only way a list is paged: keyset order, signed cursors and a total
fixed by the first page (`invoice_outbox.sendings.listing`), read in one snapshot (`reading`).
A cursor that is not ours, or was issued for another list or other filters, is a `CursorError`
(an `InvalidParameter` naming ``cursor``).  Nothing here commits or writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import QueryableAttribute

from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.list_query import DEFAULT_LIMIT, ListParams
from invoice_outbox.sendings.listing import (
    CursorSigner,
    CursorState,
    Order,
    Page,
    read_page,
    scope_of,
)


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads share one snapshot (PostgreSQL: REPEATABLE READ)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
        yield connection


async def read_list_page(
    engine: AsyncEngine,
    params: ListParams,
    selection: SendingFilter,
    *,
    signing_key: bytes,
    columns: Sequence[QueryableAttribute[Any]],
    order: Order,
    scope_parts: Sequence[str],
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page:
    """The page `params` ask for (the first one without a cursor) of `columns` rows.

    `scope_parts` name the list (with `selection` and `order` they make the cursor's scope, so
    a cursor of one list is refused by another); `extra` adds conditions of the list's own.
    Cursors are signed with `signing_key` (the service's).  `CursorError` for a bad cursor.
    """
    signer = CursorSigner(signing_key)
    scope = scope_of(selection, order, *scope_parts)
    cursor: CursorState | None = None
    if params.cursor is not None:
        cursor = signer.load(params.cursor, scope)
    async with reading(engine) as connection:
        return await read_page(
            connection,
            columns=columns,
            selection=selection,
            order=order,
            limit=params.limit or DEFAULT_LIMIT,
            cursor=cursor,
            signer=signer,
            scope=scope,
            extra=extra,
        )
