"""A switched-off system: its invoices are held (shown so everywhere, never "being sent"),
cost the worker nothing, and its deliveries in flight are given back when it is switched off.
Both engines, real receivers.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.worker import claims, sweeps
from tests.conftest import PRACTICE_A
from tests.integration.test_lanes import statuses, worker_running
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    pipeline_settings,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, gated
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, sign_in

POLL = 30.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return pipeline_settings(database_url, tmp_path, poll_seconds=POLL)


async def switch(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, url: str, *, on: bool
) -> None:
    await configure_system(client, headers, name, url, Enabled=on, timeout_seconds=120)


async def test_switching_a_system_off_gives_back_its_deliveries_and_holds_its_queue_for_free(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    with gated() as (ledger, gate):
        await switch(client, admin_headers, "Ledger", ledger.url, on=True)
        await configure_system(client, admin_headers, "Mailbox", receiver.url)
        async with worker_running(state) as worker:
            for _ in range(3):
                await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
            await asyncio.to_thread(ledger.wait_for_requests, 3, 10)
            await switch(client, admin_headers, "Ledger", ledger.url, on=False)
            # The worker gives the three back (the receiver still holds them) and goes idle.
            await asyncio.wait_for(worker.idle.wait(), 15)
            assert not gate.is_set()
            assert await statuses(state, "Ledger") == {"Pending": 3}
            # Held work wakes nobody: 20 more invoices for the switched-off system, then one
            # for a working system (and its delivery is the sign the worker has looked).
            rounds = worker.claim_rounds
            for _ in range(20):
                await submit(client, practice_headers, invoice_body(systems=["Ledger"]))
            await submit(client, practice_headers, invoice_body(systems=["Mailbox"]))
            await receiver.wait_for_requests(1)
            await asyncio.wait_for(worker.idle.wait(), 15)
            assert worker.claim_rounds - rounds <= 2
            # With only held work left, the worker waits its whole poll interval.
            assert worker.last_idle_wait == POLL
    assert await statuses(state, "Ledger") == {"Pending": 23}
    given = [s for s in await all_sendings(state) if s.system == "Ledger" and s.attempts]
    assert len(given) == 3
    for sending in given:
        [attempt] = await attempts_of(state, sending.id)
        assert attempt.reason is not None
        assert "Ledger was switched off while this was being sent" in attempt.reason
        assert (sending.attempts, sending.round_attempts) == (1, 0)  # no attempt spent


async def test_held_sendings_are_shown_as_held_everywhere_and_stale_leases_are_released(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    clock: FrozenClock,
    session: AsyncSession,
) -> None:
    await switch(client, admin_headers, "Ledger", receiver.url, on=True)
    bodies = [invoice_body(systems=["Ledger"]) for _ in range(4)]
    for body in bodies:
        await submit(client, practice_headers, body)
    # A worker claims one and dies; then the system is switched off.
    lease = timedelta(seconds=state.settings.lease_seconds)
    async with state.engine.begin() as connection:
        taken = await claims.claim_lanes(
            connection, worker="dead-worker", now=clock.now(), lease=lease, limit=1
        )
    [lost] = taken.claims
    off_at = clock.now() + timedelta(seconds=5)
    clock.advance(timedelta(seconds=5))
    await switch(client, admin_headers, "Ledger", receiver.url, on=False)
    clock.advance(lease)

    # Before any worker looks: the lost one is not "being sent" any more, it is held.
    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{lost.invoice_id}", headers=admin_headers
    )
    [shown] = detail.json()["Sendings"]
    assert (shown["Status"], shown["Held"], shown["HeldReason"]) == (
        "Sending",
        True,
        "Ledger is switched off",
    )

    async with running_worker(state) as worker:
        assert await worker.drain() == 0
        async with state.engine.connect() as connection:
            # Nothing to wake for: only held work is left.
            assert await sweeps.next_due_time(connection, clock.now()) is None
    assert len(receiver.requests) == 0
    assert await statuses(state, "Ledger") == {"Pending": 4}
    [released] = [s for s in await all_sendings(state) if s.id == lost.sending_id]
    assert (released.attempts, released.round_attempts, released.lease_owner) == (1, 0, None)
    [attempt] = await attempts_of(state, lost.sending_id)
    assert (attempt.worker, attempt.reason) == ("dead-worker", sweeps.LOST_HELD_REASON)

    listed = await client.get(
        "/api/v1/billing/sendings", params={"system": "Ledger"}, headers=admin_headers
    )
    items = listed.json()["Items"]
    assert len(items) == 4
    assert {(i["Status"], i["Held"], i["HeldReason"]) for i in items} == {
        ("Pending", True, "Ledger is switched off")
    }
    assert all(i["HeldSince"] is not None for i in items)

    practice = await client.get(f"/api/v1/{PRACTICE_A}/billing/invoices", headers=practice_headers)
    for item in practice.json()["Items"]:
        assert item["Held"] is True
        assert item["Explanation"].startswith("Ledger is switched off for now since ")
        assert "Being sent" not in item["Explanation"]

    system = (await client.get("/api/v1/billing/systems/Ledger", headers=admin_headers)).json()
    assert system["Enabled"] is False
    assert system["Lane"]["State"] == "Held"
    assert (system["Lane"]["Held"], system["Lane"]["Due"]) == (4, 0)
    assert system["Lane"]["HeldReason"] == "Ledger is switched off"
    assert system["Lane"]["HeldSince"].startswith(off_at.isoformat()[:19])

    metrics = (await client.get("/metrics")).text
    assert 'invoice_outbox_held_sendings{reason="disabled",system="Ledger"} 4.0' in metrics
    # Held work is no false alarm: nothing could be delivered, so nothing is overdue.
    assert "invoice_outbox_oldest_due_age_seconds 0.0" in metrics

    await add_web_users(session, now=clock.now())
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    overview = await client.get("/admin/")
    assert overview.status_code == 200
    assert 'data-system="Ledger"' in overview.text
    assert "4 invoices wait for it, and are sent when it is switched on again." in overview.text
    systems = await client.get("/admin/systems")
    assert "Switched off since" in systems.text
    assert "4: Ledger is switched off" in systems.text
    timeline = await client.get(f"/admin/invoices/{lost.invoice_id}")
    assert "Held: Ledger is switched off" in timeline.text
    assert "Being sent now" not in timeline.text
