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
- **No patient data, ever.**  Messages carry counts per cause slug and system name, the
  period and a pointer to the admin lists; never invoice or patient ids, documents, or
  reasons (free text that could echo a document).

Cause groups: the aborted count uses the sending's ``cause``.  A recovered sending's cause is
whatever is still on the row, which today is nothing (the worker clears ``cause`` when a
sending is sent), so recoveries are grouped by system under `UNKNOWN_CAUSE`.
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.admin.models import NotificationRun
from invoice_outbox.clock import Clock
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
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
#: Summary key of sendings without a cause (the admin lists' cause groups use it too); in
#: the webhook's `Groups` their `Cause` is null.
UNKNOWN_CAUSE = "unknown"
#: Where admins find the invoices behind the counts (an admin's bearer token is needed).
ABORTED_LIST_PATH = "/api/v1/billing/invoices/aborted"
#: Lines per section of the text; the rest is summed up in one line.
MAX_LINES = 20

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RUN_NAMESPACE = uuid.UUID("5d0c7a36-7a53-4d1e-9a43-0a1e0f3b6c21")
_NO_ID = uuid.UUID(int=0)
_CAUSE_WORDS = {
    "timeout": "Timed out",
    "connection": "Could not connect",
    "connection-refused": "Connection refused",
    "connection-reset": "Connection reset",
    "connection-closed": "Connection closed without an answer",
    "unreachable": "Host unreachable",
    "dns": "Host name did not resolve",
    "tls": "TLS failure",
    "proxy": "HTTP proxy refused",
    "config": "Configuration problem",
    "smtp-auth": "SMTP login refused",
    "no-document": "Document no longer stored",
    "document-unreadable": "Stored document could not be decrypted",
    "document-key": "Document key missing on a worker",
}


# ------------------------------------------------------------------------------ the summary
@dataclass(frozen=True, slots=True)
class Group:
    """Counts for one cause at one system.  `cause` is None when the row has none."""

    cause: str | None
    system: str
    aborted: int
    recovered: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What aborted and what recovered in ``[since, until)``, per cause and system."""

    since: datetime
    until: datetime
    groups: tuple[Group, ...]

    @property
    def aborted_count(self) -> int:
        return sum(group.aborted for group in self.groups)

    @property
    def recovered_count(self) -> int:
        return sum(group.recovered for group in self.groups)

    @property
    def is_empty(self) -> bool:
        return not self.groups

    def by_cause(self) -> dict[str, Any]:
        """The `NotificationRun.summary` JSON: ``{cause: {Aborted, Recovered, Systems}}``."""
        causes: dict[str, Any] = {}
        for group in self.groups:
            entry = causes.setdefault(
                group.cause or UNKNOWN_CAUSE, {"Aborted": 0, "Recovered": 0, "Systems": {}}
            )
            entry["Aborted"] += group.aborted
            entry["Recovered"] += group.recovered
            entry["Systems"][group.system] = {
                "Aborted": group.aborted,
                "Recovered": group.recovered,
            }
        return causes


async def build_summary(
    connection: AsyncConnection, *, since: datetime, until: datetime
) -> Summary:
    """Count, per (cause, system), the sendings that became Aborted in ``[since, until)``
    (by ``aborted_at``) and those recovered in it (Sent, ``sent_at`` in the period, after
    an abort).  Reads counts only: no ids, no reasons."""
    aborted = (
        select(Sending.cause, Sending.system, func.count())
        .where(Sending.aborted_at >= since, Sending.aborted_at < until)
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
    counts: dict[tuple[str | None, str], list[int]] = {}
    for index, query in enumerate((aborted, recovered)):
        for cause, system, count in (await connection.execute(query)).all():
            counts.setdefault((cause, system), [0, 0])[index] += count
    groups = [Group(cause, system, a, r) for (cause, system), (a, r) in counts.items()]
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


# --------------------------------------------------------------------------- the message
def cause_label(cause: str | None) -> str:
    """A short human label for a cause slug ("http-503" -> "HTTP 503 Service Unavailable")."""
    if cause is None:
        return "cause not recorded"
    if match := re.fullmatch(r"http-(\d{3})", cause):
        code = int(match[1])
        try:
            return f"HTTP {code} {http.HTTPStatus(code).phrase}"
        except ValueError:
            return f"HTTP {code}"
    if match := re.fullmatch(r"smtp-(\d{3})", cause):
        return f"SMTP {match[1]}"
    return _CAUSE_WORDS.get(cause, cause)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts[:2]) or "0 seconds"


def _headline(summary: Summary) -> str:
    aborted = summary.aborted_count
    return (
        f"invoice-outbox: {aborted} invoice{'s' if aborted != 1 else ''} could not be sent, "
        f"{summary.recovered_count} got through after failing, "
        f"in the last {_duration(summary.until - summary.since)}"
    )


def _section(title: str, lines: list[tuple[str, int]]) -> list[str]:
    if not lines:
        return []
    out = ["", title]
    out += [f"  {text}: {count}" for text, count in lines[:MAX_LINES]]
    if rest := lines[MAX_LINES:]:
        out.append(f"  and {len(rest)} more groups: {sum(count for _, count in rest)}")
    return out


def _group_text(group: Group) -> str:
    return group.system if group.cause is None else f"{cause_label(group.cause)} at {group.system}"


def render_text(summary: Summary, settings: Settings) -> str:
    """The plain-text message: headline, counts per cause and system, where to look."""
    zone = settings.zone
    start, end = summary.since.astimezone(zone), summary.until.astimezone(zone)
    lines = [
        _headline(summary),
        f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({settings.timezone})",
    ]
    by_aborted = sorted(
        (g for g in summary.groups if g.aborted), key=lambda g: (-g.aborted, _group_text(g))
    )
    by_recovered = sorted(
        (g for g in summary.groups if g.recovered), key=lambda g: (-g.recovered, _group_text(g))
    )
    lines += _section(
        "Could not be sent (no more automatic attempts):",
        [(_group_text(g), g.aborted) for g in by_aborted],
    )
    lines += _section(
        "Got through after failing:", [(_group_text(g), g.recovered) for g in by_recovered]
    )
    lines += [
        "",
        f"Which invoices and why: GET {ABORTED_LIST_PATH} (admins) or the admin dashboard.",
        "This message holds counts only, never invoice or patient data.",
    ]
    return "\n".join(lines) + "\n"


def render_document(summary: Summary, settings: Settings) -> dict[str, Any]:
    """The webhook's JSON document.  `text` (the whole message) is what chat webhooks such as
    Slack's or Mattermost's show; the other fields are for programs."""
    return {
        "text": render_text(summary, settings),
        "Event": "invoice-outbox.notification",
        "PeriodStart": summary.since.isoformat(),
        "PeriodEnd": summary.until.isoformat(),
        "Aborted": summary.aborted_count,
        "Recovered": summary.recovered_count,
        "Groups": [
            {
                "Cause": group.cause,
                "Label": cause_label(group.cause),
                "System": group.system,
                "Aborted": group.aborted,
                "Recovered": group.recovered,
            }
            for group in summary.groups
        ],
        "Links": {"Aborted": ABORTED_LIST_PATH},
    }


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
        subject=_headline(summary),
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
