"""Helpers shared by the pipeline tests (tests/integration/test_pipeline_*.py).

The pipeline tests drive the whole path: configure a system through the API, submit invoices
through the API, deliver them with a real `Worker` to a real `HttpReceiver` on loopback, and
read the outcome back through the API and the database.  Time only moves by `clock.advance`.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from defusedxml import ElementTree
from sqlalchemy import func, select

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.sealing import unseal
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.worker.loop import Worker
from tests.conftest import PRACTICE_A, build_settings, make_token
from tests.receivers import ReceivedRequest, Reply, ThreadedHttpReceiver

__all__ = [
    "ENVELOPE_NS",
    "ROWS_NS",
    "all_sendings",
    "attempts_of",
    "configure_system",
    "count",
    "envelope",
    "gated_receiver",
    "invoice_body",
    "long_lived_headers",
    "pipeline_settings",
    "running_worker",
    "submit",
    "until",
]

ENVELOPE_NS = "http://schemas.datacontract.org/2004/07/Com.Healthbridge.Core.CommonDomain.Interface.ValueObjects"
ROWS_NS = (
    "http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects"
)
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def pipeline_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """conftest's settings with `overrides` (thresholds, leases) for one module."""
    return build_settings(database_url, tmp_path, **overrides)


async def configure_system(
    client: httpx.AsyncClient,
    admin_headers: Mapping[str, str],
    name: str,
    url: str,
    *,
    practices: Sequence[uuid.UUID] = (PRACTICE_A,),
    timeout_seconds: float = 5.0,
    **extra: Any,
) -> dict[str, Any]:
    """PUT an Http system; returns the system's JSON view (asserting 200/201)."""
    body = {
        "Channel": "Http",
        "Url": url,
        "Practices": [str(p) for p in practices],
        "TimeoutSeconds": timeout_seconds,
        **extra,
    }
    response = await client.put(f"/api/v1/billing/systems/{name}", json=body, headers=admin_headers)
    assert response.status_code in (200, 201), response.text
    view: dict[str, Any] = response.json()
    return view


def invoice_body(
    invoice_id: uuid.UUID | None = None,
    encounter_id: uuid.UUID | None = None,
    *,
    document: Any = None,
    systems: Sequence[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "InvoiceId": str(invoice_id or uuid.uuid4()),
        "EncounterId": str(encounter_id or uuid.uuid4()),
        "Document": document if document is not None else {"Lines": [{"Code": "0190"}]},
    }
    if systems is not None:
        body["Systems"] = list(systems)
    return body


async def submit(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    practice: uuid.UUID = PRACTICE_A,
    expect: int | None = 202,
) -> httpx.Response:
    response = await client.post(
        f"/api/v1/{practice}/billing/invoices",
        content=orjson.dumps(body),
        headers={**headers, "Content-Type": "application/json"},
    )
    if expect is not None:
        assert response.status_code == expect, response.text
    return response


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for `condition` (something another task or connection makes true), checking it at
    every turn of the event loop; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running_worker(
    state: AppState,
    *,
    name: str = "worker-1",
    probe_interval: timedelta = timedelta(seconds=30),
    concurrency: int | None = None,
    max_in_flight: int | None = None,
) -> AsyncIterator[Worker]:
    """A Worker on the app's engine, settings and clock, closed at the end."""
    worker = Worker(
        engine=state.engine,
        settings=state.settings,
        clock=state.clock,
        keyring=state.keyring,
        waker=state.waker,
        max_in_flight=max_in_flight,
        concurrency=concurrency,
        name=name,
        probe_interval=probe_interval,
    )
    try:
        yield worker
    finally:
        await worker.aclose()


async def all_sendings(state: AppState, invoice_id: uuid.UUID | None = None) -> list[Sending]:
    """Sendings as stored now (a fresh session), optionally of one invoice."""
    statement = select(Sending).order_by(Sending.created_at, Sending.system, Sending.id)
    if invoice_id is not None:
        statement = statement.where(Sending.invoice_id == invoice_id)
    async with state.sessions() as session:
        return list((await session.scalars(statement)).all())


def opened(keyring: Keyring, document: Any) -> bytes:
    """A stored document's bytes (documents are stored sealed); `document` is a ``documents``
    row (ORM object or Core row)."""
    return unseal(
        keyring,
        key_id=document.key_id,
        nonce=bytes(document.nonce),
        body=bytes(document.body),
        document_id=document.id,
        practice_id=document.practice_id,
        invoice_id=document.invoice_id,
        content_type=document.content_type,
    )


async def attempts_of(state: AppState, sending_id: uuid.UUID) -> list[Attempt]:
    async with state.sessions() as session:
        statement = select(Attempt).where(Attempt.sending_id == sending_id).order_by(Attempt.number)
        return list((await session.scalars(statement)).all())


async def count(state: AppState, model: Any) -> int:
    async with state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def envelope(response: httpx.Response) -> dict[str, Any]:
    """A RestApiResult answer, JSON or XML, as {Sucess, ResponseCode, ResponseMessage, Data}.

    For XML, rows of Data become dicts of their (local) element names; a guid Data is its text.
    """
    content_type = response.headers["content-type"]
    if "json" in content_type:
        value: dict[str, Any] = response.json()
        return value
    assert "xml" in content_type, content_type
    root = ElementTree.fromstring(response.content)
    assert root.tag.startswith(f"{{{ENVELOPE_NS}}}RestApiResultOf"), root.tag
    result: dict[str, Any] = {}
    for child in root:
        name = child.tag.rsplit("}", 1)[-1]
        if name == "Data":
            if len(child):
                result["Data"] = [
                    {
                        field.tag.rsplit("}", 1)[-1]: (
                            None if field.get(XSI_NIL) == "true" else (field.text or "")
                        )
                        for field in row
                    }
                    for row in child
                ]
            else:
                result["Data"] = child.text
        elif name == "Sucess":
            result["Sucess"] = child.text == "true"
        elif name == "ResponseCode":
            result["ResponseCode"] = int(child.text or "0")
        else:
            result[name] = child.text
    return result


def long_lived_headers(role: Role, *practices: uuid.UUID) -> dict[str, str]:
    """A bearer token valid for a week from NOW: tests that move the clock by hours or days
    would outlive conftest's one-hour tokens."""
    token = make_token(role, *practices, lifetime=timedelta(days=7))
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def gated_receiver(timeout: float = 10.0) -> Iterator[tuple[ThreadedHttpReceiver, threading.Event]]:
    """A receiver (in its own thread) that holds every answer until the test sets the gate.

    It records a request before answering it, so `wait_for_requests` tells the test that a
    delivery is in flight; the test acts, then sets the gate to let the answer (200) go.
    The gate opens by itself after `timeout` seconds, and always before the receiver stops.
    """
    gate = threading.Event()

    def answer(_request: ReceivedRequest) -> Reply:
        gate.wait(timeout)
        return Reply(200)

    with ThreadedHttpReceiver(default=answer) as receiver:
        try:
            yield receiver, gate
        finally:
            gate.set()
