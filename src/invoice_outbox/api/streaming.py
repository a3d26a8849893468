"""Streamed legacy collections: rows go from a database cursor to the socket batch by batch.

Memory stays bounded by one batch whatever the list's length.  The first batch is read before
the response starts, so a failing query still gets a proper error status, and an empty list
gets the exact empty form of its format.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from invoice_outbox.api.state import AppState
from invoice_outbox.legacy.json_format import JSON_CLOSE, JSON_OPEN, json_rows
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_format import (
    XML_LIST_CLOSE,
    xml_empty_list,
    xml_list_open,
    xml_rows,
)
from invoice_outbox.sendings.queries import AnySelect


async def _batches(
    engine: AsyncEngine, statement: AnySelect, size: int
) -> AsyncGenerator[Sequence[Any]]:
    async with engine.connect() as connection:
        result = await connection.stream(statement.execution_options(yield_per=size))
        async for batch in result.partitions(size):
            yield batch


async def stream_status_rows(request: Request, state: AppState, statement: AnySelect) -> Response:
    """Answer `statement`'s InvoiceSendingStatusVo rows as a bare JSON or XML collection."""
    chosen = negotiate(request.headers.get("accept"))
    zone = state.settings.zone
    batches = _batches(state.engine, statement, state.settings.stream_batch_rows)
    first = await anext(batches, None)
    if first is None:
        await batches.aclose()
        body = xml_empty_list() if chosen.format == "xml" else JSON_OPEN + JSON_CLOSE
        return Response(body, media_type=chosen.content_type)

    async def json_body() -> AsyncIterator[bytes]:
        try:
            yield JSON_OPEN + json_rows(first, first=True)
            async for batch in batches:
                yield json_rows(batch, first=False)
            yield JSON_CLOSE
        finally:
            await batches.aclose()

    async def xml_body() -> AsyncIterator[bytes]:
        try:
            yield xml_list_open() + xml_rows(first, zone)
            async for batch in batches:
                yield xml_rows(batch, zone)
            yield XML_LIST_CLOSE
        finally:
            await batches.aclose()

    body_iter = xml_body() if chosen.format == "xml" else json_body()
    return StreamingResponse(body_iter, media_type=chosen.content_type)
