"""What the fault runs observe: the database (as an operator would, through plain SQL), the
practices' submissions (through the API), and the receiver's record of every request; and the
ledger that compares them at the end: lost, repeats, same key, nothing stuck.

Everything here waits on observable state with a bounded deadline, never on a sleep alone.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import orjson
import psycopg

from invoice_outbox.auth.principal import Role
from invoice_outbox.worker.sweeps import LOST_REASON
from tests.conftest import PRACTICE_A, make_token
from tests.receivers import ReceivedRequest

T = TypeVar("T")
SYSTEM = "Receiver"


def until(
    what: str, check: Callable[[], T | None], *, within: float, every: float = 0.1
) -> tuple[T, float]:
    """Poll `check` until it returns something other than None/False; (that, seconds taken).

    AssertionError naming `what` after `within` seconds: a bound on a hang, not a timing claim.
    """
    started = time.monotonic()
    while True:
        result = check()
        if result is not None and result is not False:
            return result, time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not seen within {within} s")
        time.sleep(every)


class Database:
    """Plain SQL on the run's database; `None` answers while the database is away."""

    def __init__(self, url: str) -> None:
        self.conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._connection: psycopg.Connection[Any] | None = None

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(
                    self.conninfo, autocommit=True, connect_timeout=3
                )
            return self._connection.execute(query, params).fetchall()
        except psycopg.OperationalError:
            self.close()
            return None

    def must(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows, _ = until(f"an answer to {query[:40]}", lambda: self.rows(query, params), within=60)
        return rows

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- what the runs look at -----------------------------------------------------------

    def statuses(self) -> dict[str, int] | None:
        rows = self.rows("SELECT status, count(*) FROM sendings GROUP BY status")
        return None if rows is None else dict(rows)

    def held_by(self, lease_pattern: str) -> dict[uuid.UUID, int] | None:
        """Sendings in flight under a lease whose owner matches `lease_pattern`: id → attempt."""
        rows = self.rows(
            "SELECT id, attempts FROM sendings WHERE status = 'Sending' AND lease_owner LIKE %s",
            (lease_pattern,),
        )
        return None if rows is None else {row[0]: row[1] for row in rows}

    def settled(self, ids: Iterable[uuid.UUID]) -> bool | None:
        """True once none of `ids` is in flight any more (their next attempt ended)."""
        rows = self.rows(
            "SELECT count(*) FROM sendings WHERE id = ANY(%s) AND status = 'Sending'", (list(ids),)
        )
        return None if rows is None else rows[0][0] == 0

    def all_final(self, total: int) -> dict[str, int] | None:
        statuses = self.statuses()
        if statuses is None or sum(statuses.values()) < total:
            return None
        return statuses if set(statuses) <= {"Sent", "Aborted"} else None


# --------------------------------------------------------------------------- submissions
def document(invoice_id: uuid.UUID) -> dict[str, Any]:
    """The invoice's document: it names the invoice, so the receiver's copy can be checked."""
    return {"Marker": str(invoice_id), "Lines": [{"Code": "0190", "Amount": "350.00"}]}


@dataclass
class Submitter:
    """A practice's software: posts invoices to the API, as many at once as `threads`, and
    keeps each one until it is accepted (202), honouring 503's Retry-After (capped at 1 s so
    the run keeps moving).  Records every answer's status code."""

    base_url: str
    threads: int = 4
    invoices: list[uuid.UUID] = field(default_factory=list)
    accepted: set[uuid.UUID] = field(default_factory=set)
    codes: collections.Counter[int | str] = field(default_factory=collections.Counter)
    retry_after: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="submitter")
        self._token = make_token(Role.PRACTICE, PRACTICE_A, now=datetime.now(UTC))
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
            )
            self._local.client = client
        return client

    def _post(self, invoice_id: uuid.UUID, deadline: float) -> None:
        body = orjson.dumps(
            {
                "InvoiceId": str(invoice_id),
                "EncounterId": str(uuid.uuid5(invoice_id, "encounter")),
                "Document": document(invoice_id),
            }
        )
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < deadline:
            try:
                response = self._client().post(
                    f"/api/v1/{PRACTICE_A}/billing/invoices", content=body, headers=headers
                )
            except httpx.TransportError as exc:
                with self._lock:
                    self.codes[type(exc).__name__] += 1
                time.sleep(0.5)  # the API host is unreachable: try again shortly
                continue
            with self._lock:
                self.codes[response.status_code] += 1
                if response.status_code == 503:
                    self.retry_after.append(response.headers.get("Retry-After", ""))
            if response.status_code == 202:
                with self._lock:
                    self.accepted.add(invoice_id)
                return
            wait = response.headers.get("Retry-After", "")
            time.sleep(min(1.0, float(wait)) if wait.isdigit() else 0.5)
        raise AssertionError(f"invoice {invoice_id} was never accepted")

    def submit(self, count: int, *, within: float = 300) -> list[uuid.UUID]:
        """Post `count` new invoices and wait until each is accepted; their ids."""
        ids = [uuid.uuid4() for _ in range(count)]
        with self._lock:
            self.invoices.extend(ids)
        deadline = time.monotonic() + within
        for future in [self._pool.submit(self._post, i, deadline) for i in ids]:
            future.result()
        return ids

    def submit_in_background(self, count: int, *, within: float = 600) -> threading.Thread:
        """`submit` in a thread of its own (started); join it to wait.  What went wrong is
        kept in `failures`."""

        def run() -> None:
            try:
                self.submit(count, within=within)
            except Exception as exc:  # the run's assertions report it
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, name="submitter-background")
        thread.start()
        return thread

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# --------------------------------------------------------------------------------- ledger
@dataclass(frozen=True)
class Ledger:
    """The end of a run, compared across the three records."""

    invoices: int
    lost: list[str]
    repeats: int
    repeated_sendings: int
    problems: list[str]
    statuses: dict[str, int]


def reconcile(
    database: Database, submitted: Iterable[uuid.UUID], requests: Sequence[ReceivedRequest]
) -> Ledger:
    """Compare what practices had accepted, what the database records and what the receiver got.

    - lost: an accepted invoice that is not Sent, or whose document never reached the receiver;
    - repeats: requests beyond the first for one sending (at-least-once delivery's cost);
    - problems: anything that breaks a rule: a request whose key is not its sending's, one
      sending's requests with different documents, a document without its invoice's marker,
      an invoice with other than one sending, attempt numbers with gaps or repeats, or not
      exactly one Sent attempt for a Sent sending.
    """
    accepted = set(submitted)
    sendings = database.must(
        "SELECT id, invoice_id, idempotency_key, status, attempts FROM sendings "
        "WHERE sending_type = 'Invoice'"
    )
    attempts = database.must("SELECT sending_id, number, outcome FROM attempts")
    statuses = collections.Counter(row[3] for row in sendings)
    problems: list[str] = []
    by_invoice: dict[uuid.UUID, list[tuple[Any, ...]]] = collections.defaultdict(list)
    for row in sendings:
        by_invoice[row[1]].append(row)
    key_of = {}
    for invoice_id, rows in by_invoice.items():
        if len(rows) != 1:
            problems.append(f"invoice {invoice_id} has {len(rows)} sendings")
        key_of[invoice_id] = rows[0][2]
    unknown = set(by_invoice) - accepted
    if unknown:
        problems.append(f"{len(unknown)} sendings of invoices nobody submitted")

    received: dict[str, list[ReceivedRequest]] = collections.defaultdict(list)
    for request in requests:
        invoice = request.header("X-Invoice-Id")
        key = request.header("Idempotency-Key") or ""
        received[key].append(request)
        if invoice is None or key_of.get(uuid.UUID(invoice)) != key:
            problems.append(f"a request for invoice {invoice} carried key {key!r}, not its own")
        elif invoice.encode() not in request.body:
            problems.append(f"a request for invoice {invoice} carried another document")
    for key, copies in received.items():
        if len({r.body for r in copies}) != 1:
            problems.append(f"the requests with key {key} carried different documents")

    lost = [
        f"{invoice_id} ({by_invoice[invoice_id][0][3]})"
        if invoice_id in by_invoice
        else f"{invoice_id} (no sending)"
        for invoice_id in sorted(accepted, key=str)
        if invoice_id not in by_invoice
        or by_invoice[invoice_id][0][3] != "Sent"
        or key_of[invoice_id] not in received
    ]

    numbers: dict[Any, list[int]] = collections.defaultdict(list)
    sent: collections.Counter[Any] = collections.Counter()
    for sending_id, number, outcome in attempts:
        numbers[sending_id].append(number)
        sent[sending_id] += outcome == "Sent"
    for sending_id, _, _, status, count in sendings:
        if sorted(numbers[sending_id]) != list(range(1, count + 1)):
            problems.append(f"sending {sending_id}: attempts {sorted(numbers[sending_id])}")
        if status == "Sent" and sent[sending_id] != 1:
            problems.append(f"sending {sending_id}: {sent[sending_id]} Sent attempts")

    repeats = sum(len(copies) - 1 for copies in received.values())
    repeated = sum(1 for copies in received.values() if len(copies) > 1)
    return Ledger(len(accepted), lost, repeats, repeated, problems, dict(statuses))


def lost_attempts(database: Database, worker_pattern: str) -> list[tuple[Any, ...]]:
    """Attempts recorded as lost by a take-over, made by workers matching `worker_pattern`."""
    return database.must(
        "SELECT sending_id, number FROM attempts WHERE worker LIKE %s AND reason = %s",
        (worker_pattern, LOST_REASON),
    )


def configure_receiver(base_url: str, receiver_url: str, *, timeout_seconds: float = 30) -> None:
    """PUT the run's one Http system, for practice A, through the API as an admin would."""
    response = httpx.put(
        f"{base_url}/api/v1/billing/systems/{SYSTEM}",
        json={
            "Channel": "Http",
            "Url": receiver_url,
            "Practices": [str(PRACTICE_A)],
            "TimeoutSeconds": timeout_seconds,
            # Room for every worker of the run at once (the default lane of 8 would let the
            # first worker to refill it take nearly all deliveries, and the runs ask each
            # worker to resume after a fault).
            "MaxInFlight": 64,
        },
        headers={"Authorization": f"Bearer {make_token(Role.ADMIN, now=datetime.now(UTC))}"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
