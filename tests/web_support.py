"""Helpers for the dashboard's tests (integration with httpx, and tests/browser): users, a
sign-in over HTTP, the CSRF token of a page, and a small world of failures to look at."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.auth.principal import Role
from invoice_outbox.auth.users import add_user
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System
from tests.conftest import PRACTICE_A, PRACTICE_B
from tests.factories import sending

ADMIN_NAME = "alice-admin"
ADMIN_PASSWORD = "correct horse battery"
PRACTICE_NAME = "pat-practice"
PRACTICE_PASSWORD = "practice password 1"
OTHER_PRACTICE_NAME = "olga-other-practice"
OTHER_PRACTICE_PASSWORD = "practice password 2"

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_LOGIN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def add_web_users(session: AsyncSession, *, now: datetime) -> None:
    """An admin, a user of practice A and a user of practice B (committed)."""
    await add_user(session, name=ADMIN_NAME, password=ADMIN_PASSWORD, role=Role.ADMIN, now=now)
    await add_user(
        session,
        name=PRACTICE_NAME,
        password=PRACTICE_PASSWORD,
        role=Role.PRACTICE,
        practices=[PRACTICE_A],
        now=now,
    )
    await add_user(
        session,
        name=OTHER_PRACTICE_NAME,
        password=OTHER_PRACTICE_PASSWORD,
        role=Role.PRACTICE,
        practices=[PRACTICE_B],
        now=now,
    )
    await session.commit()


def login_form_token(html: str) -> str:
    """The hidden CSRF field of the sign-in form in `html`."""
    found = _LOGIN_TOKEN.search(html)
    assert found is not None, "the page has no csrf_token field"
    return found.group(1)


def page_csrf_token(html: str) -> str:
    """The session's CSRF token, as a signed-in page publishes it (meta tag)."""
    found = _CSRF_META.search(html)
    assert found is not None, "the page has no csrf-token meta tag"
    return found.group(1)


async def post_login(
    client: httpx.AsyncClient, name: str, password: str, *, next_path: str = "/admin/"
) -> httpx.Response:
    """Fetch the sign-in form (for its token and cookie), then post it; the raw answer."""
    page = await client.get("/admin/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/admin/login",
        data={
            "csrf_token": login_form_token(page.text),
            "username": name,
            "password": password,
            "next": next_path,
        },
    )


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> str:
    """Sign `client` in (its cookie jar keeps the session); return the session's CSRF token."""
    answer = await post_login(client, name, password)
    assert answer.status_code == 303, answer.text
    # Any signed-in page publishes the token (a practice user's landing page may be a 404 page
    # until the practice view exists: it still carries the layout).
    home = await client.get("/admin/", follow_redirects=True)
    return page_csrf_token(home.text)


async def seed_failures(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Failures on two systems over the last days, a few other statuses, and one system that
    is down (committed).  Returns the count per status."""
    rows: list[Sending] = []
    plan = [
        (Status.ABORTED, "MediSwitch", "http-503", 0, 6),
        (Status.ABORTED, "MediSwitch", "http-503", 1, 3),
        (Status.FAILED, "PracticeLedger", "timeout", 0, 4),
        (Status.FAILED, "PracticeLedger", "timeout", 3, 2),
        (Status.ABORTED, "PracticeLedger", "http-400", 2, 1),
        (Status.SENT, "MediSwitch", None, 0, 5),
        (Status.PENDING, "MediSwitch", None, 0, 2),
    ]
    counts: dict[str, int] = {}
    for status, system, cause, days_ago, n in plan:
        for i in range(n):
            row = sending(
                status=status,
                when=now - timedelta(days=days_ago, minutes=10 + i),
                practice_id=PRACTICE_A if i % 2 == 0 else PRACTICE_B,
                system=system,
                reason=f"{system} failed ({cause})" if cause else None,
                attempts=1,
                overrides={"cause": cause},
            )
            rows.append(row)
        counts[status.value] = counts.get(status.value, 0) + n
    session.add_all(rows)
    session.add(
        System(
            name="MediSwitch",
            channel="Http",
            settings={"Url": "https://mediswitch.example/invoices"},
            retry_policy={},
            circuit="Down",
            consecutive_failures=9,
            down_since=now - timedelta(hours=2),
            last_failure_reason="MediSwitch answered HTTP 503 Service Unavailable",
            created_at=now,
            updated_at=now,
        )
    )
    await session.commit()
    return counts
