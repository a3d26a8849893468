"""The overview's aggregates and page, on both engines."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.web import overview_data as data
from tests.conftest import NOW, PRACTICE_A
from tests.factories import sending
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, seed_failures, sign_in


async def test_counts_days_causes_and_unhealthy_systems(
    session: AsyncSession, state: AppState
) -> None:
    counts = await seed_failures(session, now=NOW)
    # Outside the window (and a Sent row, which is no failure): not in the chart.
    session.add_all(
        [
            sending(status=Status.FAILED, when=NOW - timedelta(days=20), practice_id=PRACTICE_A),
            sending(status=Status.SENT, when=NOW - timedelta(days=1), practice_id=PRACTICE_A),
        ]
    )
    await session.commit()
    async with state.engine.connect() as connection:
        statuses = await data.status_counts(connection)
        daily = await data.daily_failures(connection, now=NOW, zone=state.settings.zone)
        causes = await data.top_causes(connection)
        unhealthy = await data.unhealthy_systems(connection)
    assert statuses == {
        "Pending": counts["Pending"],
        "Sending": 0,
        "Sent": counts["Sent"] + 1,
        "Failed": counts["Failed"] + 1,
        "Aborted": counts["Aborted"],
        "Cancelled": 0,
        "Discarded": 0,
    }
    today = date(2026, 2, 5)  # NOW is 18:06 in Johannesburg
    assert daily.days[-1] == today
    assert daily.days[0] == today - timedelta(days=data.DAYS - 1)
    assert daily.systems == ["MediSwitch", "PracticeLedger"]
    assert daily.counts == {
        ("MediSwitch", today): 6,
        ("MediSwitch", today - timedelta(days=1)): 3,
        ("PracticeLedger", today): 4,
        ("PracticeLedger", today - timedelta(days=3)): 2,
        ("PracticeLedger", today - timedelta(days=2)): 1,
    }
    assert [(c.cause, c.count) for c in causes] == [
        ("http-503", 9),
        ("timeout", 6),
        ("http-400", 1),
        ("unknown", 1),
    ]
    assert all(c.label for c in causes)
    assert [(s.name, s.circuit) for s in unhealthy] == [("MediSwitch", "Down")]


async def test_more_systems_than_colours_are_summed_as_other(
    session: AsyncSession, state: AppState
) -> None:
    for i in range(data.MAX_SERIES + 2):
        for _ in range(i + 1):
            session.add(
                sending(
                    status=Status.ABORTED,
                    when=NOW - timedelta(hours=1),
                    practice_id=PRACTICE_A,
                    system=f"System {i:02d}",
                )
            )
    await session.commit()
    async with state.engine.connect() as connection:
        daily = await data.daily_failures(connection, now=NOW, zone=state.settings.zone)
    assert len(daily.systems) == data.MAX_SERIES + 1
    assert daily.systems[0] == f"System {data.MAX_SERIES + 1:02d}"
    assert daily.systems[-1] == data.OTHER_SYSTEMS
    assert daily.counts[(data.OTHER_SYSTEMS, date(2026, 2, 5))] == 1 + 2


async def test_the_overview_page_shows_it_escaped(
    client: httpx.AsyncClient, session: AsyncSession, state: AppState, clock: FrozenClock
) -> None:
    await add_web_users(session, now=clock.now())
    await seed_failures(session, now=NOW)
    session.add(
        sending(
            status=Status.ABORTED,
            when=NOW,
            practice_id=PRACTICE_A,
            system="<b>Evil</b>",
            overrides={"cause": "http-503"},
        )
    )
    await session.commit()
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    page = await client.get("/admin/")
    assert page.status_code == 200
    assert "<b>Evil</b>" not in page.text
    assert "&lt;b&gt;Evil&lt;/b&gt;" in page.text
    assert '<span class="tile-count" data-status="Aborted">11</span>' in page.text
    assert 'href="/admin/causes/http-503"' in page.text
    assert "since 5 Feb 2026, 16:06 SAST" in page.text  # down since 2 h before NOW, local time


async def test_an_empty_database_gives_a_calm_overview(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> None:
    await add_web_users(session, now=clock.now())
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    page = await client.get("/admin/")
    assert page.status_code == 200
    assert "Every system is switched on and answering." in page.text
    assert f"No failures in the last {data.DAYS} days." in page.text
