"""Fault run: several hosts, one worker host cut off mid-delivery (issue #10).

The service runs as three hosts sharing one PostgreSQL: an API host and two worker hosts, each
in a network namespace of the run's own (`netns.py`), reaching PostgreSQL and the receiver
(both listening on root-side veth addresses) over their links.  Leases are short (3 s).  When
worker host 1 is in the middle of deliveries (the receiver has its requests, their outcomes
are not recorded) -- and, when it can be caught, inside a transaction -- its link is cut.  Its
leases expire, host 2 takes the sendings over and delivers them, and the server lets every
session of the vanished host go (with any row locks it held: a cut host holds nothing
hostage).  Then the link comes back; host 1 learns its deliveries' answers late and tries to
record them: the fence must refuse every one (its lease was taken over), so nothing newer is
overwritten.  Nothing is lost, and every repeat carries its sending's key.

Size: FAULTS_PARTITION_INVOICES (default 200; `make chaos` 2,000).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from invoice_outbox.migrate import upgrade
from invoice_outbox.worker.sweeps import LOST_REASON
from tests.faults.figures import Figures, report, size
from tests.faults.ledger import Database, Submitter, configure_receiver, reconcile, until
from tests.faults.netns import hosts
from tests.faults.processes import Service, service_environment, start_api, start_worker, stop_all
from tests.private_postgres import postgres_server
from tests.receivers import Reply, ThreadedHttpReceiver

pytestmark = [pytest.mark.faults]

LEASE_SECONDS = 3
#: Short like the lease: a cut host's open transaction (and its locks) ends after this long.
PEER_TIMEOUT_SECONDS = 5
ANSWER_DELAY = 0.5
API_PORT = 8000
TRY_MID_TRANSACTION_SECONDS = 10  # in the API host's own namespace


def _mid_delivery(
    database: Database, worker: Service, receiver: ThreadedHttpReceiver
) -> set[uuid.UUID] | None:
    """The sendings `worker` holds whose request the receiver already has (outcome pending)."""
    held = database.held_by(worker.lease_pattern)
    if not held:
        return None
    keys = database.rows(
        "SELECT id, idempotency_key FROM sendings WHERE id = ANY(%s)", (list(held),)
    )
    got = {(r.header("Idempotency-Key"), r.header("X-Attempt")) for r in receiver.requests}
    mid = {s for s, key in keys or () if (key, str(held[s])) in got}
    return mid or None


def _in_transaction(database: Database, address: str) -> int:
    """Sessions from `address` inside a transaction right now."""
    rows = database.rows(
        "SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s AND xact_start IS NOT NULL",
        (address,),
    )
    return 0 if rows is None else int(rows[0][0])


def _sessions(database: Database, address: str) -> int | None:
    """Sessions from `address` the server still has."""
    rows = database.rows("SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s", (address,))
    return None if rows is None else int(rows[0][0])


def _locking_sendings(database: Database, address: str) -> int:
    """Sessions from `address` whose open transaction locked or changed rows of sendings."""
    rows = database.rows(
        "SELECT count(DISTINCT a.pid) FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid) "
        "WHERE a.client_addr = %s AND l.relation = 'sendings'::regclass "
        "AND l.mode IN ('RowShareLock', 'RowExclusiveLock')",
        (address,),
    )
    return 0 if rows is None else int(rows[0][0])


def test_a_worker_host_cut_off_mid_delivery_is_taken_over_and_fenced(tmp_path: Path) -> None:
    invoices = size("partition_invoices", 200, 2000)
    with (
        hosts(["api", "w1", "w2"]) as net,
        postgres_server(listen=net.gateways, clients=[net.network]) as server,
        ThreadedHttpReceiver(
            default=Reply(200, delay=ANSWER_DELAY), host=net["api"].gateway
        ) as receiver,
    ):
        server.create_database("outbox")
        upgrade(server.url("outbox"))
        database = Database(server.url("outbox"))

        def environment(role: str) -> dict[str, str]:
            return service_environment(
                server.url("outbox", host=net[role].gateway),  # over the host's own link
                tmp_path / role,
                lease_seconds=str(LEASE_SECONDS),
                poll_seconds="0.5",
                database_peer_timeout_seconds=str(PEER_TIMEOUT_SECONDS),
            )

        base = f"http://{net['api'].address}:{API_PORT}"
        api = start_api(
            "api",
            environment("api"),
            tmp_path,
            host=net["api"].address,
            port=API_PORT,
            netns=net["api"].netns,
        )
        submitter = Submitter(base)
        workers: list[Service] = []
        try:
            configure_receiver(base, f"{receiver.url}in", timeout_seconds=60)
            arriving = submitter.submit_in_background(invoices)
            workers = [
                start_worker(role, environment(role), tmp_path, netns=net[role].netns)
                for role in ("w1", "w2")
            ]
            cut = workers[0]
            until(
                "worker host 1 in the middle of deliveries",
                lambda: _mid_delivery(database, cut, receiver),
                within=120,
                every=0.01,
            )
            # Harder still: cut while host 1 is also inside a transaction (recording answers
            # or claiming more), so its locks stay behind on the server.  Look for that for a
            # few answers' time, then cut anyway.
            looking = time.monotonic() + 4 * ANSWER_DELAY
            while time.monotonic() < looking and not _in_transaction(database, net["w1"].address):
                pass
            net.cut("w1")
            cut_at = time.monotonic()
            in_transaction = _in_transaction(database, net["w1"].address)
            locking = _locking_sendings(database, net["w1"].address)
            held = database.held_by(cut.lease_pattern) or {}
            mid = _mid_delivery(database, cut, receiver) or set()
            until(
                "host 2 took over and settled host 1's sendings",
                lambda: database.settled(held),
                within=120,
            )
            recovery = time.monotonic() - cut_at
            # The server has let the vanished host go: none of its sessions (nor their locks)
            # is left to hold sendings back.
            until(
                "no session of host 1 left on the server",
                lambda: _sessions(database, net["w1"].address) == 0,
                within=120,
            )
            released = time.monotonic() - cut_at
            net.restore("w1")

            def late_outcomes() -> dict[str, str] | None:
                # What host 1 did with each answer it got late: recorded (and with what
                # result), or given up on once its lease was long over ("record_error").
                seen = {
                    event["sending_id"]: event.get("status") or event["action"]
                    for event in cut.events()
                    if event.get("action") in ("delivery.recorded", "delivery.record_error")
                    and uuid.UUID(event["sending_id"]) in mid
                }
                return seen if len(seen) == len(mid) else None

            late, _ = until("host 1 tries to record its late outcomes", late_outcomes, within=180)
            arriving.join(timeout=600)
            total = len(submitter.invoices)
            statuses, _ = until("every sending Sent", lambda: database.all_final(total), within=600)
        finally:
            stop_all(api, *workers)
            submitter.close()
        ledger = reconcile(database, submitter.accepted, receiver.requests)
        newer = database.must(
            "SELECT a.sending_id, a.number, a.worker, a.outcome, a.reason FROM attempts AS a "
            "WHERE a.sending_id = ANY(%s)",
            (list(held),),
        )
        database.close()

    # Host 1's attempts on the sendings it held: only the lost-attempt records host 2's
    # take-over wrote for it; each one's Sent attempt is host 2's, at a later number.
    by_host1 = [row for row in newer if f":{cut.pid}:" in row[2]]
    overwritten = [row for row in by_host1 if row[1] >= held[row[0]] and row[4] != LOST_REASON]
    sent_by = {row[0]: (row[2], row[1]) for row in newer if row[3] == "Sent"}
    report(
        Figures(
            "several hosts, one cut off",
            invoices=ledger.invoices,
            faults=1,
            fault_kind="link cut",
            lost=len(ledger.lost),
            repeats=ledger.repeats,
            recovery=[recovery],
            notes={
                "held by the cut host": len(held),
                "of them mid-delivery": len(mid),
                "its transactions open at the cut": in_transaction,
                "of them holding sendings' rows": locking,
                "server let host 1 go after s": round(released, 1),
                "late outcomes fenced": sum(1 for s in late.values() if s == "lost"),
                "late outcomes given up": sum(1 for s in late.values() if s.endswith("error")),
                "late outcomes written": sum(
                    1 for s in late.values() if s != "lost" and not s.endswith("error")
                ),
                "submissions answered": dict(submitter.codes),
            },
        )
    )
    assert statuses == {"Sent": total}
    assert ledger.invoices == total == invoices
    assert submitter.failures == []
    assert ledger.lost == []
    assert ledger.problems == []
    assert "lost" in late.values(), "host 1 got answers late and tried to record them"
    assert set(late.values()) <= {"lost", "delivery.record_error"}, "every one was fenced"
    assert overwritten == []
    assert all(f":{cut.pid}:" not in sent_by[s][0] and sent_by[s][1] > held[s] for s in held)
