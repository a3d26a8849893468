"""Fault run: PostgreSQL restarted during delivery (issue #10).

The service runs as real processes (an API, two workers) with their default settings on a
PostgreSQL server of the run's own (`tests/private_postgres.py`), which is stopped (fast:
sessions cut) and started again while invoices are being submitted and delivered.  While it
is down the API answers 503 with Retry-After; afterwards the API and the workers recover by
themselves: the in-flight sendings are settled by the workers that hold them (none waits for
its lease to expire), nothing is lost, nothing is stuck, and every repeat carries its
sending's key.

Sizes: FAULTS_RESTART_INVOICES / FAULTS_RESTARTS (default 1,500 / 2; `make chaos` 10,000 / 2).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from invoice_outbox.auth.principal import Role
from invoice_outbox.migrate import upgrade
from tests.conftest import PRACTICE_A, make_token
from tests.faults.figures import Figures, report, size
from tests.faults.ledger import (
    Database,
    Submitter,
    configure_receiver,
    lost_attempts,
    reconcile,
    until,
)
from tests.faults.processes import Service, service_environment, start_api, start_worker, stop_all
from tests.private_postgres import free_port, postgres_server
from tests.receivers import Reply, ThreadedHttpReceiver

pytestmark = [pytest.mark.faults]


@dataclass
class Outage:
    """One restart as seen from outside."""

    answers: list[tuple[str, int | str, str]]
    in_flight: int
    api_seconds: float
    worker_seconds: list[float]
    settle_seconds: float

    def summary(self) -> dict[str, object]:
        return {
            "API while down": sorted({f"{what} {code}" for what, code, _ in self.answers}),
            "Retry-After": sorted({r for _, code, r in self.answers if code == 503}),
            "API back s": round(self.api_seconds, 1),
            "workers delivering again s": [round(s, 1) for s in self.worker_seconds],
            "in flight at stop": self.in_flight,
            "those settled s": round(self.settle_seconds, 1),
        }


#: How long the database stays away each time (a restart of a real server takes seconds).
OUTAGE_SECONDS = 3.0
ANSWER_DELAY = 0.2


def _probe(client: httpx.Client, *, submit: bool = True) -> list[tuple[str, int | str, str]]:
    """What the API answers a list and a submission right now: (what, status, Retry-After);
    the status is the error's name when no answer came (the connection was dropped)."""
    now = datetime.now(UTC)
    admin = {"Authorization": f"Bearer {make_token(Role.ADMIN, now=now)}"}
    practice = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_A, now=now)}"}
    body = {
        "InvoiceId": "0b0a7a52-0000-4000-8000-000000000001",
        "EncounterId": "0b0a7a52-0000-4000-8000-000000000002",
        "Document": {"Probe": True},
    }
    answers: list[tuple[str, int | str, str]] = []
    requests = [
        ("list", client.build_request("GET", "/api/v1/billing/invoices/failed", headers=admin))
    ]
    if submit:  # only while the database is down: it cannot be accepted
        requests.append(
            (
                "submit",
                client.build_request(
                    "POST", f"/api/v1/{PRACTICE_A}/billing/invoices", json=body, headers=practice
                ),
            )
        )
    for what, request in requests:
        try:
            response = client.send(request)
        except httpx.TransportError as exc:
            answers.append((what, type(exc).__name__, ""))
            continue
        answers.append((what, response.status_code, response.headers.get("Retry-After", "")))
    return answers


def _delivering_since(database: Database, worker: Service, since: datetime) -> bool:
    """Whether `worker` has made (and recorded) an attempt it started after `since`: it claims
    and delivers again, not only records what it had in flight."""
    rows = database.rows(
        "SELECT count(*) FROM attempts WHERE worker LIKE %s AND started_at > %s",
        (worker.lease_pattern, since),
    )
    return rows is not None and rows[0][0] > 0


def test_postgres_restarted_during_delivery_loses_nothing_and_recovers(tmp_path: Path) -> None:
    invoices = size("restart_invoices", 1500, 10000)
    restarts = size("restarts", 2, 2)
    with (
        postgres_server() as server,
        ThreadedHttpReceiver(default=Reply(200, delay=ANSWER_DELAY)) as receiver,
    ):
        url = server.create_database("outbox")
        upgrade(url)
        database = Database(url)
        environment = service_environment(url, tmp_path / "var")  # the defaults: as deployed
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = start_api("api", environment, tmp_path, host="127.0.0.1", port=port)
        submitter = Submitter(base)
        workers: list[Service] = []
        outages: list[Outage] = []
        recovery: list[float] = []
        try:
            configure_receiver(base, f"{receiver.url}in")
            submitter.submit(invoices // 2)  # a backlog, then the rest arrives during the run
            rest = submitter.submit_in_background(invoices - invoices // 2)
            workers = [start_worker(f"worker-{n}", environment, tmp_path) for n in (1, 2)]
            with httpx.Client(base_url=base, timeout=30) as client:
                for restart in range(restarts):
                    milestone = invoices * (restart + 1) // (restarts + 2)

                    def delivering(milestone: int = milestone) -> bool:
                        statuses = database.statuses() or {}
                        return (
                            statuses.get("Sent", 0) >= milestone
                            and statuses.get("Sending", 0) > 0
                            and statuses.get("Pending", 0) > 0
                        )

                    until(f"delivery under way (restart {restart + 1})", delivering, within=300)
                    in_flight = database.must("SELECT id FROM sendings WHERE status = 'Sending'")
                    database.close()
                    server.stop()
                    down_at = time.monotonic()
                    answers = []
                    while time.monotonic() - down_at < OUTAGE_SECONDS:
                        answers += _probe(client)
                        time.sleep(0.25)
                    server.start()
                    up_at, up_time = time.monotonic(), datetime.now(UTC)

                    def api_ready() -> bool:
                        return _probe(client, submit=False)[0][1] == 200

                    _, api_seconds = until("the API answers again", api_ready, within=120)
                    worker_seconds = []
                    for worker in workers:

                        def resumed(worker: Service = worker, since: datetime = up_time) -> bool:
                            assert worker.alive(), f"{worker.name} died:\n{worker.log_tail()}"
                            return _delivering_since(database, worker, since)

                        until(f"{worker.name} delivers again", resumed, within=180)
                        worker_seconds.append(time.monotonic() - up_at)
                    settled = {row[0] for row in in_flight}

                    def settle(settled: set[uuid.UUID] = settled) -> bool | None:
                        return database.settled(settled)

                    until("the sendings in flight at the stop are settled", settle, within=300)
                    outage = Outage(
                        answers,
                        len(settled),
                        api_seconds,
                        worker_seconds,
                        time.monotonic() - up_at,
                    )
                    outages.append(outage)
                    recovery.append(max(api_seconds, *worker_seconds, outage.settle_seconds))
            rest.join(timeout=600)
            total = len(submitter.invoices)
            statuses, _ = until("every sending Sent", lambda: database.all_final(total), within=600)
        finally:
            stop_all(api, *workers)
            submitter.close()
        ledger = reconcile(database, submitter.accepted, receiver.requests)
        waited_for_lease = lost_attempts(database, "%")
        database.close()

    report(
        Figures(
            "PostgreSQL restarted",
            invoices=ledger.invoices,
            faults=restarts,
            fault_kind="restarts",
            lost=len(ledger.lost),
            repeats=ledger.repeats,
            recovery=recovery,
            notes={
                **{f"restart {n + 1}": o.summary() for n, o in enumerate(outages)},
                "submissions answered": dict(submitter.codes),
            },
        )
    )
    assert statuses == {"Sent": total}
    assert ledger.invoices == total == invoices
    assert submitter.failures == []
    assert ledger.lost == []
    assert ledger.problems == []
    assert waited_for_lease == [], "no in-flight sending waited for its lease to expire"
    for outage in outages:
        assert {code for _, code, _ in outage.answers} == {503}, outage.summary()
        assert all(r.isdigit() and int(r) >= 1 for _, _, r in outage.answers), outage.summary()
    assert set(submitter.codes) <= {202, 503}
