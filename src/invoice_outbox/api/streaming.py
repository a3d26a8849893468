"""Streamed lists of InvoiceSendingStatusVo rows: from a database cursor to the socket.

Memory stays bounded by one batch whatever the list's length.  The first batch is read before
the response starts, so a failing query still gets a proper error status, and an empty list
gets the exact empty form of its format (`Frame.empty`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from invoice_outbox.legacy.frame import Frame
from invoice_outbox.legacy.json_format import JSON_LIST, json_rows
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_format import XML_LIST, xml_rows
from invoice_outbox.sendings.queries import AnySelect
from invoice_outbox.state import AppState


async def _batches(
    engine: AsyncEngine, statement: AnySelect, size: int
) -> AsyncGenerator[Sequence[Any]]:
    async with engine.connect() as connection:
        result = await connection.stream(statement.execution_options(yield_per=size))
        async for batch in result.partitions(size):
            yield batch


async def stream_status_rows(
    request: Request,
    state: AppState,
    statement: AnySelect,
    *,
    json_frame: Frame = JSON_LIST,
    xml_frame: Frame = XML_LIST,
    xml_prefix: str = "",
    status_code: int = 200,
) -> Response:
    """Answer `statement`'s rows inside the frames (a bare list by default), JSON or XML."""
    chosen = negotiate(request.headers.get("accept"))
    as_xml = chosen.format == "xml"
    frame = xml_frame if as_xml else json_frame
    zone = state.settings.zone
    batches = _batches(state.engine, statement, state.settings.stream_batch_rows)
    first = await anext(batches, None)
    if first is None:
        await batches.aclose()
        return Response(frame.empty, status_code, media_type=chosen.content_type)

    def render(batch: Sequence[Any], is_first: bool) -> bytes:
        if as_xml:
            return xml_rows(batch, zone, prefix=xml_prefix)
        return json_rows(batch, first=is_first)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield frame.open + render(first, True)
            async for batch in batches:
                yield render(batch, False)
            yield frame.close
        finally:
            await batches.aclose()

    return StreamingResponse(body(), status_code, media_type=chosen.content_type)
