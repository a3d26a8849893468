"""Batched notifications to admins: which sendings aborted, and which got through after an abort.

Contract (what `notify_once` guarantees):

- **Periods.** A notification covers a period ``[period_start, period_end)``.  Period ends lie
  on a grid of ``notify_interval_seconds`` counted from the Unix epoch, and a period is closed
  only `SETTLE` after its end (so an outcome stamped just before the end but committed just
  after it is still counted).  Every process computes the same ends, so the unique
  ``period_end`` of `NotificationRun` decides which process sends: the other one's insert
  fails and it skips.  A period starts where the previous one ended; the first one covers
  one interval.  After downtime the next period covers everything since the last one.
- **At most one message per interval** (per recipient): a new period is closed only when
  it ends at least one interval after the previous one.
- **The run row is written first**, with every recipient marked ``pending``, then the
  messages are sent and the row updated with ``sent`` or ``failed: <reason>`` per
  recipient.  A delivery failure is recorded and logged, never raised, and not retried
  (the next period's message follows anyway).  A crash between the two writes leaves
  ``pending``: at most once, never twice.
- **Quiet periods** (nothing aborted, nothing recovered) are recorded with zero counts and
  no deliveries, and nothing is sent: the row is the cursor, so the next message says what
  happened since then, not since the last noisy period.
- **No patient data, ever.**  `build_summary` reads counts per cause and system only; what
  the message says is `invoice_outbox.admin.notify_message` (its contract: counts, fixed
  words, the causes module's labels).
- **Deliveries** use the service's own channels: the webhook is an HTTP POST of
  `render_document` (address checked as any system's), each mailbox gets `render_text` by
  SMTP.  Every recipient of a period sees the same ``notification-<uuid>`` idempotency key.

Cause groups: the aborted count uses the sending's ``cause``.  A recovered sending's cause is
whatever is still on the row, which today is nothing (the worker clears ``cause`` when a
sending is sent), so recoveries are grouped by system under the causes module's `UNKNOWN`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import orjson
from sqlalchemy import func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.admin.models import NotificationRun
from invoice_outbox.admin.notify_message import (
    Group,
    Summary,
    headline,
    render_document,
    render_text,
)
from invoice_outbox.clock import Clock
from invoice_outbox.sendings.causes import OVERDUE
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Acceptance, Status
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.systems.channels.base import Delivery, DeliveryError
from invoice_outbox.systems.channels.email import EmailChannel
from invoice_outbox.systems.channels.http import HttpChannel
from invoice_outbox.systems.targets import TargetRefused, check_target, http_target_host

log = logging.getLogger(__name__)

#: How long after its end a period is closed: outcomes are stamped before they commit.
SETTLE = timedelta(seconds=30)
#: Seconds each webhook POST or SMTP step may take.
TIMEOUT = 10.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RUN_NAMESPACE = uuid.UUID("5d0c7a36-7a53-4d1e-9a43-0a1e0f3b6c21")
_NO_ID = uuid.UUID(int=0)


# ------------------------------------------------------------------------------ the summary
async def build_summary(
    connection: AsyncConnection, *, since: datetime, until: datetime
) -> Summary:
    """Count, per (cause, system), the sendings that became Aborted in ``[since, until)``
    (by ``aborted_at``; not those discarded since; a recipient's rejection is one, under its
    catalogue cause), those recovered in it (Sent, ``sent_at`` in the period, after an
    abort), and per system those whose acknowledgement became overdue in it (cause
    `OVERDUE`).  Reads counts only: no ids, no reasons."""
    aborted = (
        select(Sending.cause, Sending.system, func.count())
        .where(
            Sending.aborted_at >= since,
            Sending.aborted_at < until,
            # Given up on for good already: nobody needs telling.
            Sending.status != Status.DISCARDED.value,
        )
        .group_by(Sending.cause, Sending.system)
    )
    recovered = (
        select(Sending.cause, Sending.system, func.count())
        .where(
            Sending.status == Status.SENT.value,
            Sending.sent_at >= since,
            Sending.sent_at < until,
            Sending.aborted_at.is_not(None),
            Sending.aborted_at < Sending.sent_at,
        )
        .group_by(Sending.cause, Sending.system)
    )
    overdue = (
        select(literal(OVERDUE), Sending.system, func.count())
        .where(
            Sending.acceptance == Acceptance.OVERDUE.value,
            Sending.acceptance_due_at >= since,
            Sending.acceptance_due_at < until,
        )
        .group_by(Sending.system)
    )
    counts: dict[tuple[str | None, str], list[int]] = {}
    for index, query in enumerate((aborted, recovered, overdue)):
        for cause, system, count in (await connection.execute(query)).all():
            counts.setdefault((cause, system), [0, 0, 0])[index] += count
    groups = [Group(cause, system, a, r, o) for (cause, system), (a, r, o) in counts.items()]
    groups.sort(key=lambda g: (-g.aborted, -g.recovered, g.cause or "", g.system))
    return Summary(since=since, until=until, groups=tuple(groups))


# ---------------------------------------------------------------------------- the periods
def closed_period_end(now: datetime, interval: timedelta) -> datetime:
    """The end of the latest period that is closed at `now` (on the epoch grid)."""
    steps = (now - SETTLE - _EPOCH) // interval
    return _EPOCH + steps * interval


def next_due(now: datetime, interval: timedelta) -> datetime:
    """When the next period after the one closed at `now` closes."""
    return closed_period_end(now, interval) + interval + SETTLE


# ---------------------------------------------------------------------------- the sending
class _WebhookChannel(HttpChannel):
    """The HTTP channel without the invoice header: a notification is about no invoice.

    Headers: ``Content-Type: application/json``, ``Idempotency-Key: notification-<uuid>``
    (the same for every process and recipient of a period), ``X-Sending-Type: Notification``
    and the configured auth header.
    """

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        headers = super()._headers(delivery)
        headers.pop("X-Invoice-Id", None)
        return headers


class _MailboxChannel(EmailChannel):
    """The e-mail channel sending the delivery's document as the text body, no attachment."""

    def __init__(self, *, subject: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._subject = subject

    def build_message(self, delivery: Delivery) -> EmailMessage:
        message = super().build_message(delivery)  # From, To, Date, Message-ID
        for header in ("Subject", "X-Invoice-Id"):
            del message[header]
        message["Subject"] = self._subject
        message.clear_content()
        message.set_content(delivery.document.decode())
        return message


def _delivery(key: uuid.UUID, document: bytes, content_type: str) -> Delivery:
    return Delivery(
        sending_id=key,
        idempotency_key=f"notification-{key}",
        practice_id=_NO_ID,
        invoice_id=_NO_ID,
        sending_type="Notification",
        attempt=1,
        document=document,
        content_type=content_type,
    )


async def _post_webhook(settings: Settings, clock: Clock, summary: Summary, key: uuid.UUID) -> None:
    url = settings.notify_webhook_url
    assert url is not None
    host, port = http_target_host(url)
    await check_target(host, port, allow_private=settings.allow_private_targets)
    secret = settings.notify_webhook_auth_value
    channel = _WebhookChannel(
        system="The admin webhook",
        url=url,
        timeout=TIMEOUT,
        auth_header=settings.notify_webhook_auth_header,
        auth_value=secret.get_secret_value() if secret is not None else None,
        clock=clock,
    )
    try:
        document = orjson.dumps(render_document(summary, settings))
        await channel.deliver(_delivery(key, document, "application/json"))
    finally:
        await channel.aclose()


async def _send_email(
    settings: Settings, clock: Clock, summary: Summary, key: uuid.UUID, *, to: str
) -> None:
    assert settings.notify_smtp_host is not None
    assert settings.notify_email_from is not None
    password = settings.notify_smtp_password
    channel = _MailboxChannel(
        subject=headline(summary),
        system=f"The mail server for {to}",
        host=settings.notify_smtp_host,
        port=settings.notify_smtp_port,
        sender=settings.notify_email_from,
        recipient=to,
        timeout=TIMEOUT,
        starttls=settings.notify_smtp_starttls,
        username=settings.notify_smtp_username,
        password=password.get_secret_value() if password is not None else None,
        clock=clock,
    )
    try:
        text = render_text(summary, settings).encode()
        await channel.deliver(_delivery(key, text, "text/plain"))
    finally:
        await channel.aclose()


async def _outcome(recipient: str, period_end: datetime, send: Coroutine[Any, Any, None]) -> str:
    """Run one send; "sent" or "failed: <reason>" (reasons never carry patient data)."""
    try:
        await send
    except (DeliveryError, TargetRefused) as exc:
        result = f"failed: {exc}"
    except Exception as exc:  # a bug must not cost the other recipients their message
        log.exception(
            "notification crashed",
            extra={"action": "notify.internal_error", "recipient": recipient},
        )
        result = f"failed: internal error ({type(exc).__name__})"
    else:
        return "sent"
    log.warning(
        "notification not delivered",
        extra={
            "action": "notify.delivery_failed",
            "recipient": recipient,
            "period_end": period_end.isoformat(),
            "result": result,
        },
    )
    return result


Sender = Callable[[Summary, uuid.UUID], Coroutine[Any, Any, None]]


def _senders(settings: Settings, clock: Clock) -> dict[str, Sender]:
    """One sender per configured recipient, by the name its result is recorded under."""
    senders: dict[str, Sender] = {}
    if settings.notify_webhook_url is not None:
        senders["webhook"] = functools.partial(_post_webhook, settings, clock)
    for address in settings.notify_email_to:
        senders[f"email:{address}"] = functools.partial(_send_email, settings, clock, to=address)
    return senders


# ------------------------------------------------------------------------------- the run
async def notify_once(state: AppState, *, now: datetime) -> NotificationRun | None:
    """Close the latest period if it is due, record it, and notify its recipients.

    Returns the run (also for a quiet period, whose `deliveries` is empty), or None when no
    period is due yet or another process closed it first.  See the module docstring.
    """
    settings = state.settings
    interval = timedelta(seconds=settings.notify_interval_seconds)
    period_end = closed_period_end(now, interval)
    async with state.sessions() as session:
        last_end = await session.scalar(select(func.max(NotificationRun.period_end)))
        if last_end is not None and period_end - last_end < interval:
            return None
        since = last_end if last_end is not None else period_end - interval
        summary = await build_summary(await session.connection(), since=since, until=period_end)
        senders = {} if summary.is_empty else _senders(settings, state.clock)
        run = NotificationRun(
            period_start=since,
            period_end=period_end,
            aborted_count=summary.aborted_count,
            recovered_count=summary.recovered_count,
            summary=summary.by_cause(),
            deliveries=dict.fromkeys(senders, "pending"),
            created_at=now,
        )
        session.add(run)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            log.info(
                "period already notified by another process",
                extra={"action": "notify.skipped", "period_end": period_end.isoformat()},
            )
            return None
    event = {
        "period_start": since.isoformat(),
        "period_end": period_end.isoformat(),
        "aborted": run.aborted_count,
        "recovered": run.recovered_count,
    }
    if not senders:
        log.debug("quiet period", extra={"action": "notify.quiet", **event})
        return run
    key = uuid.uuid5(_RUN_NAMESPACE, period_end.isoformat())
    results = await asyncio.gather(
        *(_outcome(name, period_end, send(summary, key)) for name, send in senders.items())
    )
    run.deliveries = dict(zip(senders, results, strict=True))
    async with state.sessions() as session:
        await session.execute(
            update(NotificationRun)
            .where(NotificationRun.id == run.id)
            .values(deliveries=run.deliveries)
        )
        await session.commit()
    log.info(
        "admins notified", extra={"action": "notify.sent", "deliveries": run.deliveries, **event}
    )
    return run


# ------------------------------------------------------------------------------ who was told
async def notified_aborts(
    connection: AsyncConnection, aborts: Sequence[tuple[uuid.UUID, datetime | None]]
) -> set[uuid.UUID]:
    """Of (sending id, when it last aborted), the sendings whose abort a notice reported:
    a run whose period covers that moment and whose message reached at least one recipient
    ("sent").  One read over the runs spanning the moments."""
    moments = [when for _, when in aborts if when is not None]
    if not moments:
        return set()
    runs = (
        await connection.execute(
            select(
                NotificationRun.period_start, NotificationRun.period_end, NotificationRun.deliveries
            )
            .where(NotificationRun.period_end > min(moments))
            .where(NotificationRun.period_start <= max(moments))
            .where(NotificationRun.aborted_count > 0)
        )
    ).all()
    reached = [(start, end) for start, end, sent in runs if "sent" in (sent or {}).values()]
    return {
        sending_id
        for sending_id, when in aborts
        if when is not None and any(start <= when < end for start, end in reached)
    }
