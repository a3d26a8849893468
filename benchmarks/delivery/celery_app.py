"""BASELINE: delivery the way most Python teams would write it -- one Celery task per sending.

The broker is the local RabbitMQ; the queue name is unique per run.  The task loads the
sending and its document, decrypts the document (as our worker does, with the run's keys from
``INVOICE_OUTBOX_DOCUMENT_KEYS``), POSTs it with httpx to the receiver (same headers as our HTTP
channel, including ``Idempotency-Key``), then writes the same per-attempt rows as our worker in
one transaction: UPDATE the sending (status, attempts, times) and INSERT one attempt row.
A retryable answer (408, 429, 5xx) or a transport error records a ``Retryable`` attempt, marks
the sending ``Failed`` and raises, so Celery's ``autoretry_for`` retries it with backoff.

Choices made in the baseline's favour (see README.md): no result backend
(``ignore_result``), one reused psycopg connection and one reused keep-alive ``httpx.Client``
per worker process (or thread), plain SQL rather than an ORM, early acknowledgement (Celery's
default), warning-level logging, and no gossip/mingle/heartbeat traffic.

Configured by environment variables (set by the harness, read at import as Celery apps are):
``DELIVERY_BENCH_BROKER``, ``DELIVERY_BENCH_QUEUE``, ``DELIVERY_BENCH_DB`` (libpq URL),
``DELIVERY_BENCH_URL`` (receiver), ``DELIVERY_BENCH_PREFETCH``, ``INVOICE_OUTBOX_DOCUMENT_KEYS``.

``python -m benchmarks.delivery.celery_app enqueue`` publishes one task per sending (in due
order) and prints ``{"enqueued": n, "seconds": s}``; ``... cleanup`` purges and deletes the queue.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from celery import Celery  # type: ignore[import-untyped]

from invoice_outbox.sendings.keyring import KEYS_SETTING, keyring_from_entries, parse_entries
from invoice_outbox.sendings.sealing import unseal

BROKER = os.environ.get("DELIVERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("DELIVERY_BENCH_QUEUE", "delivery_bench")
DATABASE = os.environ.get("DELIVERY_BENCH_DB", "")
RECEIVER_URL = os.environ.get("DELIVERY_BENCH_URL", "")
PREFETCH = int(os.environ.get("DELIVERY_BENCH_PREFETCH", "4"))
KEYRING = (
    keyring_from_entries(parse_entries(os.environ[KEYS_SETTING]), source=KEYS_SETTING)
    if os.environ.get(KEYS_SETTING)
    else None
)
TIMEOUT_S = 30.0

app = Celery("delivery_bench", broker=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_acks_late=False,
    worker_prefetch_multiplier=PREFETCH,
    worker_hijack_root_logger=True,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
)

_local = threading.local()


class ReceiverUnavailable(Exception):
    """The receiver answered 408, 429 or 5xx: try again later."""


def _db() -> psycopg.Connection[Any]:
    connection: psycopg.Connection[Any] | None = getattr(_local, "db", None)
    if connection is None or connection.closed:
        connection = psycopg.connect(DATABASE, autocommit=True)
        _local.db = connection
    return connection


def _http() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "http", None)
    if client is None:
        client = httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
        _local.http = client
    return client


_LOAD = (
    "SELECT s.status, s.idempotency_key, s.invoice_id, s.sending_type, s.attempts, "
    "d.body, d.content_type, d.id, d.key_id, d.nonce, s.practice_id "
    "FROM sendings s JOIN documents d ON d.id = s.document_id WHERE s.id = %s"
)
_UPDATE = (
    "UPDATE sendings SET status = %(status)s, attempts = attempts + 1, "
    "round_attempts = round_attempts + 1, sending_time = %(started)s, "
    "sent_at = coalesce(%(sent_at)s, sent_at), "
    "next_attempt_at = CASE WHEN %(sent)s THEN NULL ELSE next_attempt_at END, "
    "reason = %(reason)s, updated_at = %(now)s WHERE id = %(id)s RETURNING attempts"
)
_INSERT = (
    "INSERT INTO attempts (sending_id, number, started_at, duration_ms, outcome, code, "
    "reason, worker) VALUES (%(id)s, %(number)s, %(started)s, %(ms)s, %(outcome)s, "
    "%(code)s, %(reason)s, %(worker)s)"
)


def _record(
    sending_id: str, started: datetime, ms: int, outcome: str, code: int | None, reason: str | None
) -> None:
    status = {"Sent": "Sent", "Retryable": "Failed", "Permanent": "Aborted"}[outcome]
    db = _db()
    now = datetime.now(UTC)
    values = {
        "id": sending_id,
        "status": status,
        "started": started,
        "now": now,
        "sent": status == "Sent",
        "sent_at": now if status == "Sent" else None,
        "reason": reason,
        "ms": ms,
        "outcome": outcome,
        "code": code,
        "worker": f"{socket.gethostname()[:60]}:{os.getpid()}",
    }
    with db.transaction():
        row = db.execute(_UPDATE, values).fetchone()
        assert row is not None
        db.execute(_INSERT, {**values, "number": row[0]})


@app.task(  # type: ignore[untyped-decorator]
    name="deliver_sending",
    autoretry_for=(ReceiverUnavailable, httpx.TransportError, psycopg.OperationalError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=7,
)
def deliver_sending(sending_id: str) -> None:
    row = _db().execute(_LOAD, (sending_id,)).fetchone()
    if row is None or row[0] in ("Sent", "Cancelled"):
        return  # already delivered (a redelivered message) or cancelled
    _status, key, invoice_id, sending_type, attempts, sealed, content_type = row[:7]
    document_id, key_id, nonce, practice_id = row[7:]
    assert KEYRING is not None, f"{KEYS_SETTING} is not set"
    body = unseal(
        KEYRING,
        key_id=key_id,
        nonce=nonce,
        body=sealed,
        document_id=document_id,
        practice_id=practice_id,
        invoice_id=invoice_id,
        content_type=content_type,
    )
    headers = {
        "Content-Type": f"{content_type}; charset=utf-8",
        "Idempotency-Key": key,
        "X-Invoice-Id": str(invoice_id),
        "X-Sending-Type": sending_type,
        "X-Attempt": str(attempts + 1),
        "User-Agent": "celery-baseline",
    }
    started, t0 = datetime.now(UTC), time.monotonic()
    try:
        response = _http().post(RECEIVER_URL, content=body, headers=headers)
    except httpx.TransportError as exc:
        ms = int((time.monotonic() - t0) * 1000)
        _record(sending_id, started, ms, "Retryable", None, f"{type(exc).__name__}")
        raise
    ms = int((time.monotonic() - t0) * 1000)
    code = response.status_code
    if code in (408, 429) or code >= 500:
        _record(sending_id, started, ms, "Retryable", code, f"HTTP {code}")
        raise ReceiverUnavailable(f"HTTP {code}")
    if 200 <= code < 300:
        _record(sending_id, started, ms, "Sent", code, None)
    else:
        _record(sending_id, started, ms, "Permanent", code, f"HTTP {code}")


def enqueue() -> dict[str, Any]:
    """One task per due sending, in due order, as an app would ``.delay()`` them."""
    with psycopg.connect(DATABASE) as connection:
        ids = [
            str(r[0])
            for r in connection.execute(
                "SELECT id FROM sendings WHERE status = 'Pending' ORDER BY next_attempt_at, id"
            )
        ]
    started = time.perf_counter()
    for sending_id in ids:
        deliver_sending.delay(sending_id)
    seconds = time.perf_counter() - started
    return {"enqueued": len(ids), "seconds": round(seconds, 3)}


def cleanup() -> dict[str, Any]:
    """Purge the run's queue and delete it."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        purged = int(channel.queue_purge(QUEUE) or 0)
        channel.queue_delete(QUEUE)
    return {"purged": purged, "deleted": QUEUE}


def depth() -> dict[str, Any]:
    """Messages waiting in the run's queue."""
    with app.connection_for_write() as connection:
        declared = connection.default_channel.queue_declare(QUEUE, passive=True)
        return {"depth": int(declared.message_count)}


if __name__ == "__main__":
    commands = {"enqueue": enqueue, "cleanup": cleanup, "depth": depth}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: python -m benchmarks.delivery.celery_app {'|'.join(commands)}")
    print(json.dumps(commands[sys.argv[1]]()), flush=True)
