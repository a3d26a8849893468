"""The dashboard with 100,000 failures (PostgreSQL only): lists render a page at a time, from
the first page and from a cursor deep in the list; the overview and the cause groups aggregate
without loading rows.

No timing is asserted (machines differ); the measured times are printed (``pytest -s``) and
recorded as test properties (``--junitxml``), for the record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.clock import FrozenClock
from invoice_outbox.state import AppState
from invoice_outbox.web.paging import PAGE_SIZE
from invoice_outbox.web.templating import thousands
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.integration.test_web_lists import invoice_links, next_link
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    page_csrf_token,
    sign_in,
)

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only]

ROWS = 100_000
# 3 in 5 Aborted, 2 in 5 Failed; systems, causes and the two practices interleaved.
_SEED = text(
    "INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, sending_type, "
    "status, reason, cause, attempts, round_attempts, sending_time, next_attempt_at, "
    "idempotency_key, created_at, updated_at) "
    "SELECT gen_random_uuid(), CASE WHEN g % 2 = 0 THEN CAST(:a AS uuid) ELSE CAST(:b AS uuid) "
    "END, gen_random_uuid(), gen_random_uuid(), "
    "(ARRAY['MediSwitch', 'PracticeLedger', 'HealthClaims', 'Accounts mailbox'])[1 + g % 4], "
    "'Invoice', CASE WHEN g % 5 < 3 THEN 'Aborted' ELSE 'Failed' END, "
    "'Answered HTTP 503 Service Unavailable (' || g || ')', "
    "(ARRAY['http-503', 'timeout', 'http-400'])[1 + g % 3], 8, 8, "
    "CAST(:now AS timestamptz) - g * interval '1 second', "
    "CASE WHEN g % 5 < 3 THEN NULL ELSE CAST(:now AS timestamptz) + interval '1 hour' END, "
    "md5(g::text || random()::text), CAST(:now AS timestamptz), CAST(:now AS timestamptz) "
    "FROM generate_series(1, :rows) AS g"
)
ABORTED = ROWS * 3 // 5
FAILED = ROWS - ABORTED


async def _timed(
    label: str, timings: dict[str, float], call: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    started = time.perf_counter()
    answer = await call()
    timings[label] = round((time.perf_counter() - started) * 1000, 1)
    assert answer.status_code == 200, (label, answer.text[:500])
    return answer


async def test_pages_with_100k_failures(
    client: httpx.AsyncClient,
    session: AsyncSession,
    state: AppState,
    clock: FrozenClock,
    record_property: Callable[[str, object], None],
) -> None:
    await add_web_users(session, now=clock.now())
    started = time.perf_counter()
    async with state.engine.begin() as connection:
        await connection.execute(
            _SEED, {"a": str(PRACTICE_A), "b": str(PRACTICE_B), "now": NOW, "rows": ROWS}
        )
    async with state.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE sendings"))
    seeded = time.perf_counter() - started

    timings: dict[str, float] = {}
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    first = await _timed("aborted, first page", timings, lambda: client.get("/admin/aborted"))
    assert len(invoice_links(first.text)) == PAGE_SIZE
    assert f"<strong>{thousands(ABORTED)}</strong> aborted invoices." in first.text
    cursor_url = next_link(first.text)
    assert cursor_url is not None
    for number in range(2, 5):  # walk a few pages: each from the previous page's cursor
        page = await _timed(f"aborted, page {number}", timings, partial(client.get, cursor_url))
        assert len(invoice_links(page.text)) == PAGE_SIZE
        assert f"Showing {thousands((number - 1) * PAGE_SIZE + 1)}" in page.text
        cursor_url = next_link(page.text)
        assert cursor_url is not None
    filtered = await _timed(
        "aborted, system + cause + text",
        timings,
        lambda: client.get(
            "/admin/aborted", params={"system": "MediSwitch", "cause": "timeout", "q": "(7"}
        ),
    )
    assert len(invoice_links(filtered.text)) == PAGE_SIZE
    failed = await _timed("failed, first page", timings, lambda: client.get("/admin/failed"))
    assert len(invoice_links(failed.text)) == PAGE_SIZE
    assert f"<strong>{thousands(FAILED)}</strong> failed invoices." in failed.text
    invoice = invoice_links(failed.text)[0]
    await _timed("one invoice", timings, lambda: client.get(f"/admin/invoices/{invoice}"))
    overview = await _timed("overview", timings, lambda: client.get("/admin/"))
    assert f'data-status="Aborted">{thousands(ABORTED)}<' in overview.text
    causes = await _timed("causes", timings, lambda: client.get("/admin/causes"))
    assert f"<strong>{thousands(ROWS)}</strong> invoices in 3 groups." in causes.text
    group = await _timed("one cause group", timings, lambda: client.get("/admin/causes/http-503"))
    assert f'<dd id="group-count">{thousands(ROWS // 3)}</dd>' in group.text

    await client.post("/admin/logout", data={"csrf_token": await _token(client)})
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    mine = await _timed("practice view", timings, lambda: client.get("/admin/invoices"))
    assert len(invoice_links(mine.text)) == PAGE_SIZE
    assert f"<strong>{thousands(ROWS // 2)}</strong> invoices." in mine.text
    deeper = next_link(mine.text)
    assert deeper is not None
    second = await _timed("practice view, page 2", timings, lambda: client.get(deeper))
    assert len(invoice_links(second.text)) == PAGE_SIZE

    record_property("seed_seconds", round(seeded, 1))
    for label, milliseconds in timings.items():
        record_property(label, milliseconds)
    print(f"\n100k failures seeded in {seeded:.1f} s; page times (ms): {timings}")


async def _token(client: httpx.AsyncClient) -> str:
    return page_csrf_token((await client.get("/admin/")).text)
