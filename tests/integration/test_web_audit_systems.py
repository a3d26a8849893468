"""The audit log and systems pages of the dashboard, on both engines."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import audit
from invoice_outbox.admin.resend_loop import run_job_once
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.systems.models import System, SystemPractice
from invoice_outbox.web.audit_page import PAGE_SIZE
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, seed_failures, sign_in

_ENTRY = re.compile(r'<tr data-action="([^"]+)">')
_WHY = re.compile(r'<td data-label="Why" class="reason">why (\d+)</td>')
_OLDER = re.compile(r'<a href="([^"]+)" rel="next">Older entries</a>')


@pytest.fixture
async def admin(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> tuple[httpx.AsyncClient, str]:
    await add_web_users(session, now=clock.now())
    await seed_failures(session, now=NOW)
    return client, await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)


async def add_entries(session: AsyncSession, number: int) -> None:
    """`number` discards by "bob", one a minute before NOW, reasons "why 0", "why 1", ..."""
    for i in range(number):
        await audit.record(
            session,
            principal=audit.Actor("bob", "admin"),
            action="sendings.discard",
            reason=f"why {i}",
            target=str(uuid.uuid4()),
            affected=[uuid.uuid4()],
            now=NOW - timedelta(minutes=number - i),
        )
    await session.commit()


async def test_the_audit_log_pages_with_a_cursor_newest_first(
    admin: tuple[httpx.AsyncClient, str], session: AsyncSession
) -> None:
    client, _ = admin
    await add_entries(session, PAGE_SIZE + 5)
    first = await client.get("/admin/audit?actor=bob")
    assert first.status_code == 200
    reasons = _WHY.findall(first.text)
    assert [int(r) for r in reasons] == list(range(PAGE_SIZE + 4, 4, -1))
    older = _OLDER.search(first.text)
    assert older is not None
    link = older.group(1).replace("&amp;", "&")
    assert "actor=bob" in link
    assert "cursor=" in link
    second = await client.get(link)
    assert [int(r) for r in _WHY.findall(second.text)] == [4, 3, 2, 1, 0]
    assert _OLDER.search(second.text) is None
    assert 'href="/admin/audit?actor=bob">Newest entries</a>' in second.text
    assert "5 Feb 2026, 17:" in second.text  # local time (SAST), NOW is 18:06 there


async def test_the_audit_log_shows_a_resend_jobs_entries(
    admin: tuple[httpx.AsyncClient, str], state: AppState
) -> None:
    client, csrf = admin
    started = await client.post(
        "/admin/causes/http-503/resend", data={"csrf_token": csrf, "reason": "MediSwitch is back"}
    )
    job_id = started.headers["location"].rsplit("/", 1)[1]
    await run_job_once(state, uuid.UUID(job_id))
    page = await client.get("/admin/audit")
    assert _ENTRY.findall(page.text)[:4] == [
        "resend_job.finish",
        "resend_job.batch",
        "resend_job.start",
        "session.sign_in",
    ]
    assert page.text.count(f'<a href="/admin/jobs/{job_id}">{job_id}</a>') == 3
    assert page.text.count('<td data-label="Why" class="reason">MediSwitch is back</td>') == 3
    assert "Started a resend job" in page.text
    assert "9 invoices affected" in page.text
    only = await client.get("/admin/audit?action=resend_job.start")
    assert _ENTRY.findall(only.text) == ["resend_job.start"]


async def test_the_audit_log_filters_by_local_days(
    admin: tuple[httpx.AsyncClient, str], session: AsyncSession
) -> None:
    client, _ = admin
    for days_ago, reason in ((0, "today"), (1, "yesterday"), (3, "long ago")):
        await audit.record(
            session,
            principal=audit.Actor("carol", "admin"),
            action="system.put",
            reason=reason,
            target="MediSwitch",
            now=NOW - timedelta(days=days_ago),
            details={},
        )
    await session.commit()
    page = await client.get("/admin/audit?actor=carol&from=2026-02-04&to=2026-02-04")
    assert re.findall(r'<td data-label="Why" class="reason">([^<]+)</td>', page.text) == [
        "yesterday"
    ]
    everything = await client.get("/admin/audit?actor=carol&from=2026-02-02")
    assert re.findall(r'<td data-label="Why" class="reason">([^<]+)</td>', everything.text) == [
        "today",
        "yesterday",
        "long ago",
    ]
    none = await client.get("/admin/audit?actor=nobody")
    assert "No entries match these filters." in none.text


@pytest.mark.parametrize(
    "query",
    [
        "cursor=garbage",
        "cursor=" + "x" * 300,
        "action=drop.tables",
        "from=2026-13-01",
        "to=yesterday",
        "from=2026-02-05&to=2026-02-01",
        "actor=" + "a" * 201,
        "actor=%00",
    ],
)
async def test_bad_audit_parameters_are_a_400_page(
    admin: tuple[httpx.AsyncClient, str], query: str
) -> None:
    client, _ = admin
    answer = await client.get(f"/admin/audit?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "Please check the request" in answer.text


async def test_the_systems_page_shows_health_counts_and_no_secrets(
    admin: tuple[httpx.AsyncClient, str], session: AsyncSession
) -> None:
    client, _ = admin
    session.add_all(
        [
            System(
                name="PracticeLedger",
                channel="Http",
                retry_policy={},
                circuit="Degraded",
                settings={"Url": "https://user:hunter2@ledger.example:8443/in?key=s3cret"},
                secret="Bearer top-secret-value",
                consecutive_failures=2,
                last_failure_reason="Timed out after 30 s",
                created_at=NOW,
                updated_at=NOW,
            ),
            System(
                name="Accounts <mailbox>",
                channel="Email",
                retry_policy={},
                enabled=False,
                settings={"Host": "smtp.example", "Port": 587},
                secret="smtp-password",
                created_at=NOW,
                updated_at=NOW,
            ),
            SystemPractice(system="PracticeLedger", practice_id=PRACTICE_A),
            SystemPractice(system="PracticeLedger", practice_id=PRACTICE_B),
            sending(
                status=Status.PENDING, when=NOW, practice_id=PRACTICE_A, system="PracticeLedger"
            ),
        ]
    )
    await session.commit()
    page = await client.get("/admin/systems")
    assert page.status_code == 200
    text = page.text
    for secret in ("hunter2", "s3cret", "top-secret-value", "smtp-password", "user:"):
        assert secret not in text
    down = text[text.index('data-system="MediSwitch"') :]
    down = down[: down.index("</li>")]
    assert "Down since 5 Feb 2026, 16:06 SAST, after 9 failures in a row" in down
    assert "Last failure: MediSwitch answered HTTP 503 Service Unavailable" in down
    assert "<dd data-queued>2</dd>" in down  # the 2 Pending ones wait
    assert 'href="/admin/aborted?system=MediSwitch">9</a>' in down
    ledger = text[text.index('data-system="PracticeLedger"') :]
    ledger = ledger[: ledger.index("</li>")]
    assert "2 failures in a row; still sending." in ledger
    assert "HTTP (ledger.example:8443)" in ledger
    assert "<dt>Practices</dt><dd>2</dd>" in ledger
    assert "<dd data-queued>7</dd>" in ledger  # 6 Failed (retried) + 1 Pending
    assert "Accounts &lt;mailbox&gt;" in text
    assert "Accounts <mailbox>" not in text
    assert "No: nothing is sent" in text
    assert "E-mail (mail server smtp.example)" in text
