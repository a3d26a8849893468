"""Operational guarantees: e-mail delivery through the worker, graceful stop, target checks,
secrets write-only, metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.status import Status
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from tests.conftest import PRACTICE_A, build_settings
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, Reply, SmtpReceiver


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return build_settings(database_url, tmp_path, shutdown_grace_seconds=0.2)


async def test_email_system_delivers_the_document_as_an_attachment(
    client: httpx.AsyncClient, state: AppState, admin_headers: dict[str, str]
) -> None:
    with SmtpReceiver() as mailbox:
        body = {
            "Channel": "Email",
            "Host": "127.0.0.1",
            "Port": mailbox.port,
            "Sender": "billing@practice.example",
            "Recipient": "accounts@aid.example",
            "StartTls": False,
            "Practices": [str(PRACTICE_A)],
            "Password": "s3cret-pw",
        }
        put = await client.put("/api/v1/billing/systems/Mailbox", json=body, headers=admin_headers)
        assert put.status_code == 201, put.text
        assert "s3cret-pw" not in put.text, "secrets are write-only"
        assert put.json()["HasSecret"] is True
        invoice = invoice_body(document={"InvoiceNumber": "INV-7", "Patient": "Jane Doe"})
        await submit(client, admin_headers, invoice)
        async with running_worker(state) as worker:
            assert await worker.drain() == 1
        [mail] = mailbox.wait_for_messages(1)
    message = mail.message
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1
    assert b'"InvoiceNumber":"INV-7"' in attachments[0].get_payload(decode=True)
    assert "Jane Doe" not in str(message["Subject"])
    [sending] = await all_sendings(state)
    assert sending.status == Status.SENT.value


async def test_stop_releases_a_delivery_still_in_flight(
    client: httpx.AsyncClient,
    state: AppState,
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
) -> None:
    receiver.script(Reply(hang=True))
    await configure_system(client, admin_headers, "Slow", receiver.url + "slow")
    await submit(client, admin_headers, invoice_body())
    async with running_worker(state) as worker:
        run = asyncio.create_task(worker.run())
        await receiver.wait_for_requests(1, within=10)
        worker.stop()  # grace is 0.2 s: the hanging delivery is interrupted and released
        await asyncio.wait_for(run, timeout=30)
    [sending] = await all_sendings(state)
    assert sending.status in (Status.PENDING.value, Status.FAILED.value)
    assert sending.lease_owner is None
    assert sending.round_attempts == 0, "an interrupted attempt does not spend the budget"
    [attempt] = await attempts_of(state, sending.id)
    assert attempt.reason is not None
    assert "shutting down" in attempt.reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
    ],
)
async def test_internal_targets_are_refused_unless_allowed(
    database_url: str,
    tmp_path: Path,
    admin_headers: dict[str, str],
    url: str,
    clock: FrozenClock,
) -> None:
    from invoice_outbox.app import create_app

    strict = build_settings(database_url, tmp_path, allow_private_targets=False)
    app = create_app(strict, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            body = {"Channel": "Http", "Url": url, "Practices": [str(PRACTICE_A)]}
            response = await http.put(
                "/api/v1/billing/systems/Internal", json=body, headers=admin_headers
            )
            listed = await http.get("/api/v1/billing/systems", headers=admin_headers)
    assert response.status_code == 409  # well formed; the address the name has refuses it
    assert "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS" in response.json()["Message"]
    assert listed.json() == {"Systems": []}


async def test_metrics_expose_deliveries_queue_and_circuits(
    client: httpx.AsyncClient,
    state: AppState,
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    clock: FrozenClock,
) -> None:
    receiver.script(Reply(503), Reply(503))
    await configure_system(client, admin_headers, "Flaky", receiver.url + "f")
    await submit(client, admin_headers, invoice_body())
    await submit(client, admin_headers, invoice_body())
    async with running_worker(state) as worker:
        await worker.drain()
    state.metrics.delivery.observe("Flaky", "Sent", 0.1)  # what the running loop records
    text = (await client.get("/metrics")).text
    assert 'invoice_outbox_sendings{status="Failed"} 2.0' in text
    assert 'invoice_outbox_system_circuit{system="Flaky"} 1.0' in text  # degraded
    assert "invoice_outbox_oldest_due_age_seconds" in text
    assert 'invoice_outbox_attempt_duration_seconds_bucket{le="0.25",system="Flaky"}' in text
    clock.advance(timedelta(minutes=1))
    later = (await client.get("/metrics")).text
    age = next(
        line
        for line in later.splitlines()
        if line.startswith("invoice_outbox_oldest_due_age_seconds ")
    )
    assert float(age.split()[1]) > 0
