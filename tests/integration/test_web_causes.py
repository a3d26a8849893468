"""Cause groups, "resend all" and resend jobs in the dashboard, on both engines.

Jobs are run with `run_job_once` (the test app has no runner), so nothing waits on time.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import AuditEntry, ResendJob
from invoice_outbox.admin.resend_loop import run_job_once
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A
from tests.factories import sending
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    seed_failures,
    sign_in,
)

_ROW = re.compile(
    r'<tr data-cause="([^"]+)">.*?<td data-label="Invoices" class="num" data-count>([^<]+)</td>',
    re.S,
)


@pytest.fixture
async def admin(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock
) -> tuple[httpx.AsyncClient, str]:
    """The client signed in as the admin (with seeded failures), and its CSRF token."""
    await add_web_users(session, now=clock.now())
    await seed_failures(session, now=NOW)
    return client, await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)


def counts_on_page(html: str) -> dict[str, int]:
    return {cause: int(n.replace("\u202f", "")) for cause, n in _ROW.findall(html)}


async def status_of_cause(state: AppState, cause: str) -> dict[str, int]:
    async with state.sessions() as db:
        rows = await db.execute(
            select(Sending.status, func.count())
            .where(Sending.cause == cause)
            .group_by(Sending.status)
        )
        return {status: int(n) for status, n in rows}


async def jobs(state: AppState) -> list[ResendJob]:
    async with state.sessions() as db:
        return list((await db.scalars(select(ResendJob))).all())


async def actions(state: AppState) -> list[str]:
    async with state.sessions() as db:
        return list((await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


@pytest.mark.parametrize("query", ["", "?status=Aborted", "?system=PracticeLedger&status=Failed"])
async def test_the_causes_page_counts_what_the_api_counts(
    admin: tuple[httpx.AsyncClient, str], admin_headers: dict[str, str], query: str
) -> None:
    client, _ = admin
    page = await client.get(f"/admin/causes{query}")
    assert page.status_code == 200
    api = await client.get(f"/api/v1/billing/causes{query}", headers=admin_headers)
    expected = {g["Cause"]: g["Count"] for g in api.json()["Groups"]}
    assert expected  # the seeded world has failures for every query above
    assert counts_on_page(page.text) == expected
    assert 'id="causes-chart"' in page.text
    for cause in expected:
        assert f'href="/admin/causes/{cause}' in page.text


async def test_a_cause_page_describes_the_group_and_samples_it(
    admin: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = admin
    page = await client.get("/admin/causes/http-503")
    assert page.status_code == 200
    assert "<h1>HTTP 503 Service Unavailable</h1>" in page.text
    assert '<dd id="group-count">9</dd>' in page.text
    assert page.text.count('href="/admin/invoices/') == 9
    assert 'href="/admin/aborted?cause=http-503"' in page.text
    assert "Resend all 9" in page.text
    assert "MediSwitch failed (http-503)" in page.text  # the most recent reason
    empty = await client.get("/admin/causes/smtp-550")
    assert empty.status_code == 200
    assert "No failed or aborted invoices have this cause now." in empty.text
    assert "Resend all" not in empty.text


async def test_resend_all_starts_the_apis_job_and_its_progress_is_readable(
    admin: tuple[httpx.AsyncClient, str], state: AppState
) -> None:
    client, csrf = admin
    answer = await client.post(
        "/admin/causes/http-503/resend",
        data={"csrf_token": csrf, "reason": "MediSwitch is back up"},
    )
    assert answer.status_code == 303
    match = re.fullmatch(r"/admin/jobs/([0-9a-f-]{36})", answer.headers["location"])
    assert match is not None
    job_id = uuid.UUID(match.group(1))
    running = await client.get(f"/admin/jobs/{job_id}.json")
    assert running.headers["cache-control"] == "no-store"
    assert running.json() == {
        "JobId": str(job_id),
        "Status": "Running",
        "DryRun": False,
        "Total": 9,
        "Done": 0,
        "Skipped": 0,
        "Failed": 0,
    }
    page = await client.get(f"/admin/jobs/{job_id}")
    assert f'data-poll-url="/admin/jobs/{job_id}.json"' in page.text
    assert 'href="/admin/jobs" aria-current="page"' in page.text  # jobs have their own item
    assert 'aria-live="polite">0 of 9 handled\u2026</p>' in page.text
    assert await status_of_cause(state, "http-503") == {"Aborted": 9}  # not done inline

    await run_job_once(state, job_id)

    done = (await client.get(f"/admin/jobs/{job_id}.json")).json()
    assert (done["Status"], done["Done"], done["Skipped"], done["Failed"]) == ("Done", 9, 0, 0)
    assert await status_of_cause(state, "http-503") == {"Pending": 9}
    page = await client.get(f"/admin/jobs/{job_id}")
    assert "Finished: 9 of 9 handled." in page.text
    assert "data-poll-url" not in page.text
    listed = await client.get("/admin/jobs")
    assert f'href="/admin/jobs/{job_id}"' in listed.text
    assert 'href="/admin/jobs" aria-current="page"' in listed.text
    assert "MediSwitch is back up" in listed.text
    assert [a for a in await actions(state) if a.startswith("resend_job.")] == [
        "resend_job.start",
        "resend_job.batch",
        "resend_job.finish",
    ]


async def test_a_dry_run_changes_nothing_and_can_then_be_run(
    admin: tuple[httpx.AsyncClient, str], state: AppState
) -> None:
    client, csrf = admin
    answer = await client.post(
        "/admin/causes/timeout/resend?",
        data={
            "csrf_token": csrf,
            "reason": "see first",
            "dry_run": "1",
            "status": "Failed",
            "system": "PracticeLedger",
        },
    )
    assert answer.status_code == 303
    preview = await client.get(answer.headers["location"])
    assert "Dry run: 6 invoices would be sent again" in preview.text
    assert "What would be sent again" in preview.text  # the first page of them, listed
    assert "Timed out on PracticeLedger (failed)" in preview.text
    assert await status_of_cause(state, "timeout") == {"Failed": 6}
    assert not [a for a in await actions(state) if a.startswith("resend_job.")]
    preview_id = answer.headers["location"].rsplit("/", 1)[1]
    run = await client.post(
        f"/admin/jobs/{preview_id}/run", data={"csrf_token": csrf, "reason": "now for real"}
    )
    assert run.status_code == 303
    job_id = uuid.UUID(run.headers["location"].rsplit("/", 1)[1])
    await run_job_once(state, job_id)
    assert await status_of_cause(state, "timeout") == {"Pending": 6}


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
async def test_resend_without_the_csrf_token_is_refused_and_starts_nothing(
    admin: tuple[httpx.AsyncClient, str], state: AppState, token: str | None
) -> None:
    client, _ = admin
    data = {"reason": "no token"} | ({} if token is None else {"csrf_token": token})
    answer = await client.post("/admin/causes/http-503/resend", data=data)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "This form has expired" in answer.text
    assert await jobs(state) == []


async def test_practice_users_get_403_on_every_admin_page(
    client: httpx.AsyncClient, session: AsyncSession, clock: FrozenClock, state: AppState
) -> None:
    await add_web_users(session, now=clock.now())
    await seed_failures(session, now=NOW)
    job_id = uuid.uuid4()
    csrf = await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    for path in (
        "/admin/causes",
        "/admin/causes/http-503",
        "/admin/jobs",
        f"/admin/jobs/{job_id}",
        f"/admin/jobs/{job_id}.json",
        "/admin/audit",
        "/admin/systems",
    ):
        answer = await client.get(path)
        assert answer.status_code == 403, path
        assert "Not available to your account" in answer.text
    posted = await client.post(
        "/admin/causes/http-503/resend", data={"csrf_token": csrf, "reason": "mine"}
    )
    assert posted.status_code == 403
    assert await jobs(state) == []


async def test_signed_out_browsers_are_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/admin/causes", "/admin/jobs", "/admin/audit", "/admin/systems"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/login?next=")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/admin/causes?status=Sent", 400),
        ("GET", "/admin/causes?status=Bogus", 400),
        ("GET", "/admin/causes?system=%3Cscript%3E", 400),
        ("GET", "/admin/causes?system=A&system=B", 400),
        ("GET", "/admin/causes/Not%20a%20cause", 404),
        ("GET", "/admin/causes/no-such-cause", 404),
        ("GET", "/admin/causes/http-503?status=Pending", 400),
        ("GET", "/admin/jobs/not-a-uuid", 400),
        ("GET", "/admin/jobs/not-a-uuid.json", 400),
        ("GET", f"/admin/jobs/{uuid.UUID(int=1)}", 404),
        ("GET", f"/admin/jobs/{uuid.UUID(int=1)}.json", 404),
        ("POST", "/admin/causes/http-503/resend", 400),
        ("POST", "/admin/causes/%00/resend", 400),
        ("POST", f"/admin/jobs/{uuid.UUID(int=1)}/run", 404),
    ],
)
async def test_bad_input_gets_an_html_error_page_never_a_500(
    admin: tuple[httpx.AsyncClient, str], state: AppState, method: str, path: str, status: int
) -> None:
    client, csrf = admin
    data = {"csrf_token": csrf, "reason": "" if "resend" in path else "why"}
    answer = await client.request(method, path, data=data if method == "POST" else None)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert await jobs(state) == []


@pytest.mark.parametrize(
    "form",
    [{"status": "Sent"}, {"system": "<b>x</b>"}, {"reason": "x" * 1001}],
)
async def test_a_form_that_cannot_mean_anything_is_a_400(
    admin: tuple[httpx.AsyncClient, str], state: AppState, form: dict[str, str]
) -> None:
    client, csrf = admin
    data = {"csrf_token": csrf, "reason": "why"} | form
    answer = await client.post("/admin/causes/http-503/resend", data=data)
    assert answer.status_code == 400
    assert "<b>x</b>" not in answer.text
    assert await jobs(state) == []


async def test_names_and_reasons_are_escaped(
    admin: tuple[httpx.AsyncClient, str], session: AsyncSession
) -> None:
    client, csrf = admin
    session.add(
        sending(
            status=Status.ABORTED,
            when=NOW,
            practice_id=PRACTICE_A,
            system="<i>Evil</i>",
            reason="<script>alert(1)</script>",
            overrides={"cause": "http-503"},
        )
    )
    await session.commit()
    for path in ("/admin/causes", "/admin/causes/http-503"):
        page = await client.get(path)
        assert "<script>alert(1)</script>" not in page.text
        assert "<i>Evil</i>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    answer = await client.post(
        "/admin/causes/http-503/resend",
        data={"csrf_token": csrf, "reason": "<img src=x onerror=alert(1)>"},
    )
    job = await client.get(answer.headers["location"])
    assert "<img src=x" not in job.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in job.text


async def test_the_unknown_group_is_resent_as_it_is_counted(
    admin: tuple[httpx.AsyncClient, str], session: AsyncSession, state: AppState
) -> None:
    """Failures recorded without a cause are the group ``unknown``: "Resend all 2" resends 2."""
    client, csrf = admin
    for _ in range(2):
        session.add(sending(status=Status.ABORTED, when=NOW, practice_id=PRACTICE_A))
    await session.commit()
    page = await client.get("/admin/causes/unknown")
    assert "Resend all 2" in page.text
    answer = await client.post(
        "/admin/causes/unknown/resend", data={"csrf_token": csrf, "reason": "no cause known"}
    )
    job_id = uuid.UUID(answer.headers["location"].rsplit("/", 1)[1])
    await run_job_once(state, job_id)
    done = (await client.get(f"/admin/jobs/{job_id}.json")).json()
    assert (done["Total"], done["Done"]) == (2, 2)
