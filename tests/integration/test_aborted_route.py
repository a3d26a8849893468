"""GET api/v1/billing/invoices/aborted against real storage: bytes, order, streaming."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

import httpx
from defusedxml import ElementTree
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.sendings.status import Status
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.factories import sending

ROUTE = "/api/v1/billing/invoices/aborted"
NS = (
    "{http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects}"
)

KNOWN: dict[str, object] = {
    "id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "encounter_id": uuid.UUID("FEDE1C96-5F76-4F88-B173-7C5FB843BFD3"),
    "invoice_id": uuid.UUID("a7d00b48-46d6-4e66-bf74-8ab8e731ff3c"),
}
EXPECTED_JSON = (
    b'[{"PracticeId":"1c2d9508-589f-4ac3-8898-16c402da5ea8",'
    b'"EncounterId":"fede1c96-5f76-4f88-b173-7c5fb843bfd3",'
    b'"InvoiceId":"a7d00b48-46d6-4e66-bf74-8ab8e731ff3c",'
    b'"Reason":"Switch said <503> & \\"busy\\"","Status":"Aborted","System":"MediSwitch",'
    b'"SendingTime":"2026-02-05T16:06:25Z","SendingAttempts":8,"SendingType":"Invoice"}]'
)
EXPECTED_XML = (
    b'<ArrayOfInvoiceSendingStatusVo xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
    b'xmlns="http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.'
    b'ValueObjects"><InvoiceSendingStatusVo><EncounterId>fede1c96-5f76-4f88-b173-7c5fb843bfd3'
    b"</EncounterId><InvoiceId>a7d00b48-46d6-4e66-bf74-8ab8e731ff3c</InvoiceId><PracticeId>"
    b"1c2d9508-589f-4ac3-8898-16c402da5ea8</PracticeId><Reason>Switch said &lt;503&gt; &amp; "
    b'"busy"</Reason><SendingAttempts>8</SendingAttempts><SendingTime>'
    b"2026-02-05T18:06:25.576601+02:00</SendingTime><SendingType>Invoice</SendingType><Status>"
    b"Aborted</Status><System>MediSwitch</System></InvoiceSendingStatusVo>"
    b"</ArrayOfInvoiceSendingStatusVo>"
)


async def _add_known(session: AsyncSession) -> None:
    session.add(
        sending(
            status=Status.ABORTED,
            when=NOW,
            practice_id=PRACTICE_A,
            attempts=8,
            reason='Switch said <503> & "busy"',
            overrides=KNOWN,
        )
    )
    await session.commit()


async def test_json_is_byte_exact(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _add_known(session)
    response = await client.get(ROUTE, headers={**admin_headers, "Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.content == EXPECTED_JSON


async def test_xml_is_byte_exact(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    await _add_known(session)
    response = await client.get(ROUTE, headers={**admin_headers, "Accept": "text/xml"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content == EXPECTED_XML


async def test_empty_list_in_both_formats(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    as_json = await client.get(ROUTE, headers=admin_headers)
    assert as_json.content == b"[]"
    as_xml = await client.get(ROUTE, headers={**admin_headers, "Accept": "application/xml"})
    assert as_xml.content == (
        b'<ArrayOfInvoiceSendingStatusVo xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
        b'xmlns="http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.'
        b'ValueObjects"/>'
    )


async def test_only_aborted_rows_oldest_first(
    client: httpx.AsyncClient, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    newer = sending(status=Status.ABORTED, when=NOW, practice_id=PRACTICE_A, reason="newer")
    older = sending(
        status=Status.ABORTED, when=NOW - timedelta(days=1), practice_id=PRACTICE_B, reason="older"
    )
    others = [
        sending(status=s, when=NOW, practice_id=PRACTICE_A, reason=s.value)
        for s in Status
        if s is not Status.ABORTED
    ]
    session.add_all([newer, older, *others])
    await session.commit()
    body = (await client.get(ROUTE, headers=admin_headers)).json()
    assert [row["Reason"] for row in body] == ["older", "newer"]
    assert {row["Status"] for row in body} == {"Aborted"}


async def _raw_get(app: FastAPI, path: str, headers: dict[str, str]) -> list[bytes]:
    """Call the ASGI app directly and keep every body message it sends (httpx would join them)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    chunks: list[bytes] = []
    requested = False
    finished = asyncio.Event()

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays connected until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            if message.get("body"):
                chunks.append(message["body"])
            if not message.get("more_body"):
                finished.set()

    await app(scope, receive, send)
    return chunks


async def test_long_list_streams_in_batches(
    app: FastAPI, session: AsyncSession, admin_headers: dict[str, str]
) -> None:
    # settings.stream_batch_rows is 50: 130 rows must leave as several body messages.
    session.add_all(
        sending(
            status=Status.ABORTED,
            when=NOW + timedelta(seconds=i),
            practice_id=PRACTICE_A,
            reason=f"r{i}\x01",
        )
        for i in range(130)
    )
    await session.commit()
    as_json = await _raw_get(app, ROUTE, {**admin_headers, "Accept": "application/json"})
    assert len(as_json) >= 3
    rows = json.loads(b"".join(as_json))
    assert [row["Reason"] for row in rows] == [f"r{i}\x01" for i in range(130)]
    as_xml = await _raw_get(app, ROUTE, {**admin_headers, "Accept": "application/xml"})
    assert len(as_xml) >= 3
    root = ElementTree.fromstring(b"".join(as_xml))
    assert len(root.findall(f"{NS}InvoiceSendingStatusVo")) == 130
