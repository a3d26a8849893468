"""One invoice's page (timeline, who may see it) and its resend/discard forms, on both engines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.factories import sending
from tests.web_support import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    OTHER_PRACTICE_NAME,
    OTHER_PRACTICE_PASSWORD,
    PRACTICE_NAME,
    PRACTICE_PASSWORD,
    add_web_users,
    page_csrf_token,
    sign_in,
)

EVIL = '<script>alert("x")</script>'


async def _seed_invoice(session: AsyncSession) -> tuple[Sending, Sending]:
    """One invoice of practice A sent to two systems: Aborted after two attempts (with a
    reason that would be markup) and Sent at the first."""
    invoice_id, encounter_id = uuid.uuid4(), uuid.uuid4()
    common = {"invoice_id": invoice_id, "encounter_id": encounter_id}
    aborted = sending(
        status=Status.ABORTED,
        when=NOW - timedelta(minutes=5),
        practice_id=PRACTICE_A,
        system="MediSwitch",
        reason=f"MediSwitch answered HTTP 400 {EVIL}",
        attempts=2,
        overrides={**common, "cause": "http-400"},
    )
    sent = sending(
        status=Status.SENT,
        when=NOW - timedelta(minutes=9),
        practice_id=PRACTICE_A,
        system="PracticeLedger",
        attempts=1,
        overrides={**common, "sent_at": NOW - timedelta(minutes=9)},
    )
    session.add_all([aborted, sent])
    await session.flush()
    session.add_all(
        [
            Attempt(
                sending_id=aborted.id,
                number=1,
                started_at=NOW - timedelta(minutes=10),
                duration_ms=30_000,
                outcome="Retryable",
                code=None,
                reason="Timed out after 30 s waiting for MediSwitch",
                worker="host-a:1",
            ),
            Attempt(
                sending_id=aborted.id,
                number=2,
                started_at=NOW - timedelta(minutes=5),
                duration_ms=412,
                outcome="Permanent",
                code=400,
                reason=f"MediSwitch answered HTTP 400 {EVIL}",
                worker="host-b:7",
            ),
            Attempt(
                sending_id=sent.id,
                number=1,
                started_at=NOW - timedelta(minutes=9),
                duration_ms=1234,
                outcome="Sent",
                code=202,
                reason=None,
                worker="host-a:1",
            ),
        ]
    )
    await session.commit()
    return aborted, sent


@pytest.fixture
async def users(session: AsyncSession, clock: FrozenClock) -> None:
    await add_web_users(session, now=clock.now())


async def _status_of(state: AppState, sending_id: uuid.UUID) -> tuple[str, str | None]:
    async with state.sessions() as fresh:
        row = (
            await fresh.execute(
                select(Sending.status, Sending.reason).where(Sending.id == sending_id)
            )
        ).one()
        return row[0], row[1]


async def _audit(state: AppState) -> list[AuditEntry]:
    async with state.sessions() as fresh:
        entries = await fresh.scalars(
            select(AuditEntry).where(AuditEntry.action.like("sendings.%")).order_by(AuditEntry.id)
        )
        return list(entries.all())


async def test_an_admin_sees_the_timeline_in_plain_words(
    client: httpx.AsyncClient, session: AsyncSession, users: None
) -> None:
    aborted, sent = await _seed_invoice(session)
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    page = await client.get(f"/admin/invoices/{aborted.invoice_id}")
    assert page.status_code == 200
    text = page.text
    assert '<span class="badge status-aborted" data-status="Aborted">Aborted</span>' in text
    assert '<span class="badge status-sent" data-status="Sent">Sent</span>' in text
    # Admin words: the cause, and that resending will not change a refusal (item 3).
    assert "Bad request (HTTP 400): MediSwitch refused it, and resending will not change" in text
    assert "The receiver could not accept the invoice as it is." not in text
    assert "Refused; not tried again automatically" in text
    assert "Failed; tried again later" in text
    assert "Delivered" in text
    assert "5 Feb 2026, 17:56 SAST" in text  # the first attempt, in the service's zone
    assert "host-b:7" in text
    assert "30 s" in text
    assert "412 ms" in text
    assert EVIL not in text
    assert "&lt;script&gt;" in text
    # Forms for the Aborted sending only (resend and discard), each with CSRF and a reason.
    assert text.count('name="csrf_token"') == 3  # two forms and sign-out
    assert f"/sendings/{aborted.id}/resend" in text
    assert f"/sendings/{aborted.id}/discard" in text
    assert f"/sendings/{sent.id}/" not in text


async def test_a_practice_user_sees_their_invoice_but_not_another_practices(
    client: httpx.AsyncClient, session: AsyncSession, users: None
) -> None:
    aborted, _ = await _seed_invoice(session)
    await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    own = await client.get(f"/admin/invoices/{aborted.invoice_id}")
    assert own.status_code == 200
    assert "The receiver could not accept the invoice as it is." in own.text
    assert "/resend" not in own.text  # actions are for admins
    assert "Idempotency key" not in own.text
    await client.post("/admin/logout", data={"csrf_token": page_csrf_token(own.text)})

    await sign_in(client, OTHER_PRACTICE_NAME, OTHER_PRACTICE_PASSWORD)
    foreign = await client.get(f"/admin/invoices/{aborted.invoice_id}")
    missing = await client.get(f"/admin/invoices/{uuid.uuid4()}")
    garbage = await client.get("/admin/invoices/not-an-id")
    for answer in (foreign, missing, garbage):
        assert answer.status_code == 404
        assert "Invoice not found" in answer.text
    assert foreign.text == missing.text.replace(str(missing.url.path), str(foreign.url.path))
    assert "MediSwitch" not in foreign.text


async def test_resend_by_form_queues_it_and_writes_the_audit_entry(
    client: httpx.AsyncClient, session: AsyncSession, state: AppState, users: None
) -> None:
    aborted, _ = await _seed_invoice(session)
    token = await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    url = f"/admin/invoices/{aborted.invoice_id}/sendings/{aborted.id}/resend"
    answer = await client.post(url, data={"csrf_token": token, "reason": "  MediSwitch fixed  "})
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        f"/admin/invoices/{aborted.invoice_id}?done=resent#sending-{aborted.id}"
    )
    assert (await _status_of(state, aborted.id))[0] == Status.PENDING.value
    [entry] = await _audit(state)
    assert entry.action == "sendings.resend"
    assert entry.actor == ADMIN_NAME
    assert entry.reason == "MediSwitch fixed"
    assert entry.affected == [str(aborted.id)]
    assert entry.details["PreviousStatus"] == "Aborted"
    page = await client.get(answer.headers["location"])
    assert '<p class="notice" role="status" id="done">Queued again' in page.text
    assert 'data-status="Pending">Pending</span>' in page.text
    # Pending now: a second resend is refused with the API's reason, on the page, as 409.
    again = await client.post(url, data={"csrf_token": token, "reason": "once more"})
    assert again.status_code == 409
    assert "already queued (Pending)" in again.text
    assert len(await _audit(state)) == 1


async def test_discard_by_form_gives_up_and_writes_the_audit_entry(
    client: httpx.AsyncClient, session: AsyncSession, state: AppState, users: None
) -> None:
    aborted, _ = await _seed_invoice(session)
    token = await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    url = f"/admin/invoices/{aborted.invoice_id}/sendings/{aborted.id}/discard"
    answer = await client.post(url, data={"csrf_token": token, "reason": "Duplicate invoice"})
    assert answer.status_code == 303
    assert "done=discarded" in answer.headers["location"]
    status, reason = await _status_of(state, aborted.id)
    assert status == Status.DISCARDED.value
    assert reason == f"MediSwitch answered HTTP 400 {EVIL}"  # the failure stays
    [entry] = await _audit(state)
    assert entry.action == "sendings.discard"
    assert entry.reason == "Duplicate invoice"
    page = await client.get(answer.headers["location"])
    assert 'role="status"' in page.text
    assert 'data-status="Discarded">Discarded</span>' in page.text
    assert "Discarded; given up on for good, no more attempts" in page.text
    assert f"by {ADMIN_NAME}: Duplicate invoice</dd>" in page.text
    assert "Given up on for good." in page.text  # admin words
    assert "Discarded (given up on)</strong> by " in page.text  # the action, in the timeline
    assert f"/sendings/{aborted.id}/discard" not in page.text  # already discarded
    assert f"/sendings/{aborted.id}/resend" in page.text  # an admin naming it still resends


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 1001])
async def test_a_missing_or_bad_reason_shows_the_page_again_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    state: AppState,
    users: None,
    reason: str | None,
) -> None:
    aborted, _ = await _seed_invoice(session)
    token = await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    data = {"csrf_token": token} | ({} if reason is None else {"reason": reason})
    url = f"/admin/invoices/{aborted.invoice_id}/sendings/{aborted.id}/resend"
    answer = await client.post(url, data=data)
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    assert "reason" in answer.text.lower()
    assert 'aria-invalid="true"' in answer.text
    assert f'Invoice <span class="id">{aborted.invoice_id}</span>' in answer.text
    assert (await _status_of(state, aborted.id))[0] == Status.ABORTED.value
    assert await _audit(state) == []


async def test_without_the_csrf_token_nothing_changes(
    client: httpx.AsyncClient, session: AsyncSession, state: AppState, users: None
) -> None:
    aborted, _ = await _seed_invoice(session)
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    base = f"/admin/invoices/{aborted.invoice_id}/sendings/{aborted.id}"
    for action in ("resend", "discard"):
        for data in ({"reason": "no token"}, {"reason": "bad token", "csrf_token": "forged"}):
            answer = await client.post(f"{base}/{action}", data=data)
            assert answer.status_code == 403
            assert "This form has expired" in answer.text
    assert await _status_of(state, aborted.id) == (
        Status.ABORTED.value,
        f"MediSwitch answered HTTP 400 {EVIL}",
    )
    assert await _audit(state) == []


async def test_practice_users_cannot_act_and_ids_must_match(
    client: httpx.AsyncClient, session: AsyncSession, state: AppState, users: None
) -> None:
    aborted, _sent = await _seed_invoice(session)
    other = sending(status=Status.ABORTED, when=NOW, practice_id=PRACTICE_B)
    session.add(other)
    await session.commit()
    token = await sign_in(client, PRACTICE_NAME, PRACTICE_PASSWORD)
    url = f"/admin/invoices/{aborted.invoice_id}/sendings/{aborted.id}/resend"
    refused = await client.post(url, data={"csrf_token": token, "reason": "please"})
    assert refused.status_code == 403
    await client.post("/admin/logout", data={"csrf_token": token})
    token = await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    # A sending of another invoice, named under this one: not found, nothing changes.
    mixed = f"/admin/invoices/{aborted.invoice_id}/sendings/{other.id}/resend"
    answer = await client.post(mixed, data={"csrf_token": token, "reason": "mixed up"})
    assert answer.status_code == 404
    assert (await _status_of(state, other.id))[0] == Status.ABORTED.value
    assert (await _status_of(state, aborted.id))[0] == Status.ABORTED.value
    assert await _audit(state) == []
