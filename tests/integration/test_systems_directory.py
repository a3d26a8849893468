"""Intake's cache of the systems: used while nothing changes, dropped when systems change --
also when another process changes them (PostgreSQL: NOTIFY; SQLite: the version row)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, text, update

from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.state import AppState
from invoice_outbox.systems.models import System, SystemsVersion
from invoice_outbox.systems.schemas import SystemIn
from invoice_outbox.systems.service import put_system
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.pipeline_helpers import configure_system, invoice_body, submit, until
from tests.receivers import HttpReceiver


async def _put_elsewhere(state: AppState, name: str, url: str, practices: list[object]) -> None:
    """`put_system` through an engine of its own, as another process (the CLI) would."""
    engine = make_async_engine(state.settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            spec = SystemIn.model_validate({"Channel": "Http", "Url": url, "Practices": practices})
            await put_system(session, name, spec, now=state.clock.now())
            await session.commit()
    finally:
        await engine.dispose()


async def _version(state: AppState) -> int:
    async with state.engine.connect() as connection:
        return int(await connection.scalar(select(SystemsVersion.version)) or 0)


async def test_another_process_changing_systems_reaches_intake(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
    engine_name: str,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    if engine_name == "postgres":
        await until(lambda: state.systems.listening)
    await submit(client, practice_headers, invoice_body())
    assert state.systems.cached
    loads = state.systems.loads
    for _ in range(5):
        await submit(client, practice_headers, invoice_body())
    assert state.systems.loads == loads  # nothing changed: no reload

    await _put_elsewhere(state, "Switch2", receiver.url, [str(PRACTICE_A)])
    if engine_name == "postgres":
        await until(lambda: not state.systems.cached)  # the NOTIFY dropped it
    await submit(client, practice_headers, invoice_body(systems=["Switch2"]))

    await _put_elsewhere(state, "Switch2", receiver.url, [str(PRACTICE_B)])
    if engine_name == "postgres":
        await until(lambda: not state.systems.cached)
    refused = await submit(client, practice_headers, invoice_body(systems=["Switch2"]), expect=409)
    assert "not configured for practice" in refused.json()["Message"]


async def test_the_version_moves_with_names_and_practices_only(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    first = await _version(state)
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    created = await _version(state)
    assert created > first
    async with state.engine.begin() as connection:  # as the worker records an outage
        await connection.execute(update(System).values(circuit="Down", consecutive_failures=9))
    assert await _version(state) == created
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, practices=[PRACTICE_A, PRACTICE_B]
    )
    assert await _version(state) > created


@pytest.mark.postgres_only
async def test_a_lost_listener_means_the_version_is_checked(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    """While the LISTEN connection is down no notification can arrive: the cache is not
    trusted then, so a change made meanwhile is still seen."""
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    await until(lambda: state.systems.listening)
    async with state.engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN invoice_outbox_systems%'"
            )
        )
    await until(lambda: not state.systems.listening)
    await submit(client, practice_headers, invoice_body())
    await _put_elsewhere(state, "Switch2", receiver.url, [str(PRACTICE_A)])
    # Not listening: the version check sees it.  Reconnected meanwhile: reconnecting dropped
    # the cache, or the notification does.
    await until(lambda: not state.systems.listening or not state.systems.cached)
    await submit(client, practice_headers, invoice_body(systems=["Switch2"]))
