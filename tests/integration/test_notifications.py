"""Admin notifications: batched per period, counts per cause, never patient data; on both
engines, against a real HTTP receiver and a real SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.admin import notify_loop
from invoice_outbox.admin.models import NotificationRun
from invoice_outbox.admin.notifications import notify_once
from invoice_outbox.clock import FrozenClock
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A, build_settings
from tests.factories import sending
from tests.receivers import HttpReceiver, Reply, SmtpReceiver

# NOW is 16:06:25 UTC; with 15-minute periods (closed 30 s after their end) the latest
# closed period at NOW is [15:45, 16:00), and the next one [16:00, 16:15).
FIRST_START = datetime(2026, 2, 5, 15, 45, tzinfo=UTC)
FIRST_END = datetime(2026, 2, 5, 16, 0, tzinfo=UTC)
SECOND_END = datetime(2026, 2, 5, 16, 15, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
PATIENT = "Thandi Nkosi"
PATIENT_REASON = f"MediSwitch rejected the invoice of {PATIENT} (ID 8001015009087)"


def with_settings(state: AppState, tmp_path: Path, **overrides: Any) -> AppState:
    """The same running state (engine, clock) with notification settings added."""
    settings = build_settings(state.settings.database_url, tmp_path, **overrides)
    return dataclasses.replace(state, settings=settings)


def aborted(at: datetime, cause: str, system: str = "MediSwitch", **overrides: Any) -> Sending:
    values = {"aborted_at": at, "cause": cause, **overrides}
    return sending(
        status=Status.ABORTED,
        when=at,
        practice_id=PRACTICE_A,
        system=system,
        reason=PATIENT_REASON,
        attempts=8,
        overrides=values,
    )


def recovered(aborted_at: datetime, sent_at: datetime, system: str = "MediSwitch") -> Sending:
    return sending(
        status=Status.SENT,
        when=sent_at,
        practice_id=PRACTICE_A,
        system=system,
        overrides={"aborted_at": aborted_at, "sent_at": sent_at},
    )


async def runs(session: AsyncSession) -> list[NotificationRun]:
    session.expire_all()
    return list((await session.scalars(select(NotificationRun).order_by(NotificationRun.id))).all())


async def test_aborted_sendings_are_reported_once_per_interval_without_patient_data(
    state: AppState, session: AsyncSession, receiver: HttpReceiver, tmp_path: Path
) -> None:
    notifying = with_settings(
        state,
        tmp_path,
        notify_webhook_url=receiver.url + "hooks/admins",
        notify_webhook_auth_header="Authorization",
        notify_webhook_auth_value="Bearer hook-secret",
    )
    in_period = [aborted(FIRST_START + timedelta(minutes=m), "http-503") for m in (1, 5, 14)]
    in_period.append(aborted(FIRST_END - timedelta(seconds=1), "http-400", "PracticeLedger"))
    outside = [
        aborted(FIRST_START - timedelta(seconds=1), "http-503"),  # the period before
        aborted(FIRST_END, "http-503"),  # the next period
        sending(
            status=Status.FAILED,
            when=FIRST_START,
            practice_id=PRACTICE_A,
            reason=PATIENT_REASON,
            overrides={"cause": "http-503"},
        ),
    ]
    session.add_all(in_period + outside)
    await session.commit()

    run = await notify_once(notifying, now=NOW)

    assert run is not None
    assert (run.period_start, run.period_end) == (FIRST_START, FIRST_END)
    assert (run.aborted_count, run.recovered_count) == (4, 0)
    assert run.deliveries == {"webhook": "sent"}
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.target == "/hooks/admins"
    assert request.header("Authorization") == "Bearer hook-secret"
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.header("X-Invoice-Id") is None
    payload = orjson.loads(request.body)
    assert payload["Aborted"] == 4
    assert payload["Recovered"] == 0
    assert payload["PeriodStart"] == FIRST_START.isoformat()
    assert payload["PeriodEnd"] == FIRST_END.isoformat()
    assert payload["Groups"] == [
        {
            "Cause": "http-503",
            "Label": "HTTP 503 Service Unavailable",
            "System": "MediSwitch",
            "Aborted": 3,
            "Recovered": 0,
            "Overdue": 0,
        },
        {
            "Cause": "http-400",
            "Label": "Bad request (HTTP 400)",
            "System": "PracticeLedger",
            "Aborted": 1,
            "Recovered": 0,
            "Overdue": 0,
        },
    ]
    text = payload["text"]
    assert text.startswith(
        "invoice-outbox: 4 invoices could not be sent, 0 got through after failing, "
        "in the last 15 minutes\n"
    )
    assert "HTTP 503 Service Unavailable at MediSwitch: 3" in text
    assert "Bad request (HTTP 400) at PracticeLedger: 1" in text
    assert "/api/v1/billing/invoices/aborted" in text

    # Nothing that identifies a patient or an invoice, anywhere in the request.
    wire = request.body.decode() + repr(request.headers)
    for row in in_period + outside:
        for value in (row.invoice_id, row.encounter_id, row.id, row.practice_id):
            assert str(value) not in wire
    assert "Thandi" not in wire
    assert "8001015009087" not in wire

    [stored] = await runs(session)
    assert stored.summary == {
        "http-503": {
            "Aborted": 3,
            "Recovered": 0,
            "Systems": {"MediSwitch": {"Aborted": 3, "Recovered": 0}},
        },
        "http-400": {
            "Aborted": 1,
            "Recovered": 0,
            "Systems": {"PracticeLedger": {"Aborted": 1, "Recovered": 0}},
        },
    }
    assert stored.deliveries == {"webhook": "sent"}

    # Within the interval nothing more is sent, however often it is asked.
    assert await notify_once(notifying, now=NOW) is None
    assert await notify_once(notifying, now=NOW + timedelta(minutes=8)) is None
    assert len(receiver.requests) == 1
    assert len(await runs(session)) == 1


async def test_recoveries_are_reported_in_the_next_interval(
    state: AppState,
    session: AsyncSession,
    receiver: HttpReceiver,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    notifying = with_settings(state, tmp_path, notify_webhook_url=receiver.url)
    session.add(aborted(FIRST_START + timedelta(minutes=2), "timeout", "PracticeLedger"))
    await session.commit()
    first = await notify_once(notifying, now=clock.now())
    assert first is not None
    assert first.aborted_count == 1

    # Three got through after an abort (one aborted long ago), one aborted again; one sent
    # sending never failed and is no recovery.
    earlier = FIRST_START - timedelta(days=2)
    session.add_all(
        [
            recovered(
                FIRST_START + timedelta(minutes=2),
                FIRST_END + timedelta(minutes=3),
                "PracticeLedger",
            ),
            recovered(earlier, FIRST_END + timedelta(minutes=4)),
            recovered(earlier, SECOND_END - timedelta(seconds=1)),
            recovered(earlier, SECOND_END),  # belongs to the period after
            aborted(FIRST_END + timedelta(minutes=9), "http-503"),
            sending(
                status=Status.SENT,
                when=FIRST_END,
                practice_id=PRACTICE_A,
                overrides={"sent_at": FIRST_END + timedelta(minutes=1)},
            ),
        ]
    )
    await session.commit()

    clock.advance(INTERVAL)
    second = await notify_once(notifying, now=clock.now())

    assert second is not None
    assert (second.period_start, second.period_end) == (FIRST_END, SECOND_END)
    assert (second.aborted_count, second.recovered_count) == (1, 3)
    # The worker clears `cause` when a sending is sent: recoveries land in "unknown".
    assert second.summary["unknown"] == {
        "Aborted": 0,
        "Recovered": 3,
        "Systems": {
            "MediSwitch": {"Aborted": 0, "Recovered": 2},
            "PracticeLedger": {"Aborted": 0, "Recovered": 1},
        },
    }
    requests = receiver.requests
    assert len(requests) == 2
    payload = orjson.loads(requests[1].body)
    assert (payload["Aborted"], payload["Recovered"]) == (1, 3)
    text = payload["text"]
    assert text.startswith(
        "invoice-outbox: 1 invoice could not be sent, 3 got through after failing, "
        "in the last 15 minutes\n"
    )
    assert "Got through after failing:\n  MediSwitch: 2\n  PracticeLedger: 1\n" in text
    assert "HTTP 503 Service Unavailable at MediSwitch: 1" in text


async def test_quiet_periods_send_nothing_but_move_the_period_on(
    state: AppState,
    session: AsyncSession,
    receiver: HttpReceiver,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    notifying = with_settings(state, tmp_path, notify_webhook_url=receiver.url)
    quiet = await notify_once(notifying, now=clock.now())
    assert quiet is not None
    assert (quiet.aborted_count, quiet.recovered_count, quiet.deliveries) == (0, 0, {})
    assert receiver.requests == []

    # Two hours without the notifier (a deploy, an outage): the next message covers them all.
    session.add(aborted(FIRST_END + timedelta(minutes=70), "connection-refused"))
    await session.commit()
    clock.advance(timedelta(hours=2))
    caught_up = await notify_once(notifying, now=clock.now())

    assert caught_up is not None
    assert (caught_up.period_start, caught_up.period_end) == (
        FIRST_END,
        FIRST_END + timedelta(hours=2),
    )
    [request] = receiver.requests
    text = orjson.loads(request.body)["text"]
    assert "in the last 2 hours\n" in text
    assert "Connection refused at MediSwitch: 1" in text


async def test_email_to_every_admin_mailbox(
    state: AppState, session: AsyncSession, tmp_path: Path
) -> None:
    session.add_all(
        [aborted(FIRST_START + timedelta(minutes=m), "smtp-550", "Mailbox") for m in (1, 2)]
    )
    await session.commit()
    async with SmtpReceiver() as smtp:
        notifying = with_settings(
            state,
            tmp_path,
            notify_email_to="ops@example.org, billing-lead@example.org",
            notify_email_from="invoice-outbox@example.org",
            notify_smtp_host=smtp.host,
            notify_smtp_port=smtp.port,
            notify_smtp_starttls=False,
        )
        run = await notify_once(notifying, now=NOW)
        mails = smtp.messages

    assert run is not None
    assert run.deliveries == {
        "email:ops@example.org": "sent",
        "email:billing-lead@example.org": "sent",
    }
    assert sorted(mail.recipients for mail in mails) == [
        ("billing-lead@example.org",),
        ("ops@example.org",),
    ]
    message = mails[0].message
    assert message["From"] == "invoice-outbox@example.org"
    assert message["Subject"] == (
        "invoice-outbox: 2 invoices could not be sent, 0 got through after failing, "
        "in the last 15 minutes"
    )
    assert message["X-Invoice-Id"] is None
    assert message["Date"].datetime == NOW.replace(microsecond=0)  # the injected clock
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert "Mailbox refused the message (SMTP 550) at Mailbox: 2" in body
    assert PATIENT not in mails[0].content.decode()
    assert mails[0].message["Message-ID"] == mails[1].message["Message-ID"]  # one notification


async def test_a_failing_recipient_is_recorded_and_the_others_still_get_theirs(
    state: AppState, session: AsyncSession, receiver: HttpReceiver, tmp_path: Path
) -> None:
    receiver.respond_with(Reply(500, body=b"stack trace with secrets"))
    session.add(aborted(FIRST_START, "http-503"))
    await session.commit()
    async with SmtpReceiver() as smtp:
        notifying = with_settings(
            state,
            tmp_path,
            notify_webhook_url=receiver.url,
            notify_email_to="ops@example.org",
            notify_email_from="invoice-outbox@example.org",
            notify_smtp_host=smtp.host,
            notify_smtp_port=smtp.port,
            notify_smtp_starttls=False,
        )
        run = await notify_once(notifying, now=NOW)
        mails = smtp.messages

    assert run is not None
    expected = {
        "webhook": "failed: The admin webhook answered HTTP 500 Internal Server Error",
        "email:ops@example.org": "sent",
    }
    assert run.deliveries == expected
    assert len(receiver.requests) == 1
    assert len(mails) == 1
    [stored] = await runs(session)
    assert stored.deliveries == expected
    # Not retried within the interval: the next period's message follows anyway.
    assert await notify_once(notifying, now=NOW) is None
    assert len(receiver.requests) == 1


async def test_mail_server_refusing_is_recorded(
    state: AppState, session: AsyncSession, tmp_path: Path
) -> None:
    session.add(aborted(FIRST_START, "http-503"))
    await session.commit()
    async with SmtpReceiver() as smtp:  # offers no STARTTLS, which is required by default
        notifying = with_settings(
            state,
            tmp_path,
            notify_email_to="ops@example.org",
            notify_email_from="invoice-outbox@example.org",
            notify_smtp_host=smtp.host,
            notify_smtp_port=smtp.port,
        )
        run = await notify_once(notifying, now=NOW)
        mails = smtp.messages

    assert run is not None
    assert mails == []
    result = run.deliveries["email:ops@example.org"]
    assert result.startswith("failed: The mail server for ops@example.org does not offer STARTTLS")


async def test_webhook_on_an_internal_address_is_refused(
    state: AppState, session: AsyncSession, receiver: HttpReceiver, tmp_path: Path
) -> None:
    session.add(aborted(FIRST_START, "http-503"))
    await session.commit()
    notifying = with_settings(
        state, tmp_path, notify_webhook_url=receiver.url, allow_private_targets=False
    )

    run = await notify_once(notifying, now=NOW)

    assert run is not None
    assert run.deliveries["webhook"].startswith("failed: 127.0.0.1 resolves to an internal address")
    assert receiver.requests == []


async def test_two_processes_closing_the_same_period_send_one_message(
    state: AppState, session: AsyncSession, receiver: HttpReceiver, tmp_path: Path
) -> None:
    session.add_all([aborted(FIRST_START + timedelta(minutes=m), "http-503") for m in (1, 2)])
    await session.commit()
    # Two notifiers with their own settings objects; each opens its own sessions.
    one = with_settings(state, tmp_path, notify_webhook_url=receiver.url)
    other = with_settings(state, tmp_path, notify_webhook_url=receiver.url)

    results = await asyncio.gather(notify_once(one, now=NOW), notify_once(other, now=NOW))

    assert sum(result is not None for result in results) == 1
    assert len(await runs(session)) == 1
    assert len(receiver.requests) == 1


async def test_service_sends_and_stops_promptly(
    state: AppState, session: AsyncSession, receiver: HttpReceiver, tmp_path: Path
) -> None:
    session.add(aborted(FIRST_START, "http-503"))
    await session.commit()
    notifying = with_settings(state, tmp_path, notify_webhook_url=receiver.url)
    stop = asyncio.Event()
    task = asyncio.create_task(notify_loop.run_notifications(notifying, stop))

    await receiver.wait_for_requests(1)
    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert len(receiver.requests) == 1
    assert len(await runs(session)) == 1


async def test_service_without_recipients_only_waits_for_stop(
    state: AppState, session: AsyncSession
) -> None:
    session.add(aborted(FIRST_START, "http-503"))
    await session.commit()
    stop = asyncio.Event()
    task = asyncio.create_task(notify_loop.run_notifications(state, stop))
    await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
    assert not task.done()

    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert await runs(session) == []


async def test_service_survives_a_failing_round(
    state: AppState,
    receiver: HttpReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifying = with_settings(state, tmp_path, notify_webhook_url=receiver.url)
    called = asyncio.Event()

    async def broken(state: AppState, *, now: datetime) -> None:
        called.set()
        raise RuntimeError("database went away")

    monkeypatch.setattr(notify_loop, "notify_once", broken)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger=notify_loop.__name__):
        task = asyncio.create_task(notify_loop.run_notifications(notifying, stop))
        await asyncio.wait_for(called.wait(), timeout=5)
        stop.set()
        await asyncio.wait_for(task, timeout=5)  # ended by stop, not by the error

    assert [r.__dict__.get("action") for r in caplog.records] == ["notify.error"]
