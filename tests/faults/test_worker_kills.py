"""Fault run: workers killed while working (issue #10).

Two worker processes share the queue; one of them is SIGKILLed again and again, each time
while it holds leases (seen in the database), and started afresh.  Invoices arrive through
the API as the run goes, so there is always work to hold.  Nothing may be lost, every repeat
carries its sending's idempotency key and document, and each attempt the killed worker never
finished is recorded visibly when the other worker takes it over.

Sizes: FAULTS_KILL_INVOICES / FAULTS_KILLS (default 2,000 / 10; `make chaos` 10,000 / 30).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import pytest

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
from tests.private_postgres import free_port
from tests.receivers import Reply, ThreadedHttpReceiver

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.faults]

LEASE_SECONDS = 5
CONCURRENCY = 8
#: Invoices kept waiting while the killed worker restarts, so it finds some to claim.
BACKLOG = 4 * CONCURRENCY
#: The receiver takes this long to answer: deliveries are in flight when the kill comes.
ANSWER_DELAY = 0.1


def outcomes_recorded(database: Database, worker: Service) -> int:
    """Outcomes `worker` has recorded so far."""
    rows = database.rows(
        "SELECT count(*) FROM attempts WHERE worker LIKE %s", (worker.lease_pattern,)
    )
    return 0 if rows is None else int(rows[0][0])


class Recovery(threading.Thread):
    """Times each kill: from SIGKILL until every sending the dead worker held is settled
    (taken over by a live worker and its new attempt ended)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.database = Database(url)
        self.pending: list[tuple[float, set[uuid.UUID]]] = []
        self.seconds: list[float] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def watch(self, killed_at: float, held: set[uuid.UUID]) -> None:
        with self.lock:
            self.pending.append((killed_at, held))

    def run(self) -> None:
        while not self.done.is_set() or self.pending:
            with self.lock:
                pending = list(self.pending)
            for killed_at, held in pending:
                if self.database.settled(held):
                    with self.lock:
                        self.pending.remove((killed_at, held))
                        self.seconds.append(time.monotonic() - killed_at)
            time.sleep(0.05)
        self.database.close()


def test_a_worker_killed_again_and_again_while_holding_leases_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    invoices = size("kill_invoices", 2000, 10000)
    kills = size("kills", 10, 30)
    database = Database(database_url)
    environment = service_environment(
        database_url,
        tmp_path / "var",
        lease_seconds=str(LEASE_SECONDS),
        poll_seconds="0.5",
    )
    port = free_port()
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    recovery = Recovery(database_url)
    with ThreadedHttpReceiver(default=Reply(200, delay=ANSWER_DELAY)) as receiver:
        api = start_api("api", environment, tmp_path, host="127.0.0.1", port=port)
        submitter = Submitter(f"http://127.0.0.1:{port}")
        survivor = start_worker("survivor", environment, tmp_path, concurrency=CONCURRENCY)
        victims: list[Service] = []
        recovery.start()
        try:
            configure_receiver(f"http://127.0.0.1:{port}", f"{receiver.url}in")
            remaining = invoices
            killed: list[tuple[Service, dict[uuid.UUID, int]]] = []
            victims.append(start_worker("victim-0", environment, tmp_path))
            topping_up: threading.Thread | None = None
            while len(killed) < kills:
                victim = victims[-1]
                kills_left = kills - len(killed)

                # It works a while first (a random number of outcomes), so that kills land
                # anywhere in a worker's life, not only on its first claim.
                works = rng.randint(0, 3 * CONCURRENCY)

                def holding(
                    victim: Service = victim, kills_left: int = kills_left, works: int = works
                ) -> bool | None:
                    nonlocal remaining, topping_up
                    assert victim.alive(), f"{victim.name} died:\n{victim.log_tail()}"
                    if outcomes_recorded(database, victim) >= works and database.held_by(
                        victim.lease_pattern
                    ):
                        return True
                    statuses = database.statuses() or {}
                    backlog = statuses.get("Pending", 0) + statuses.get("Failed", 0)
                    if backlog < BACKLOG and (topping_up is None or not topping_up.is_alive()):
                        # Top up (in the background: the kill must not wait for it), keeping
                        # enough for the kills to come.  On a slow machine the run may need
                        # more than planned: the figures count what was sent.
                        spare = remaining - kills_left * BACKLOG
                        batch = max(BACKLOG, spare // (kills_left + 1))
                        topping_up = submitter.submit_in_background(batch)
                        remaining -= batch
                    return None

                until(f"{victim.name} working, holding leases", holding, within=120, every=0.02)
                victim.kill()
                killed_at = time.monotonic()
                held = database.held_by(victim.lease_pattern) or {}
                if held:  # it may have finished them between the look and the kill
                    killed.append((victim, held))
                    recovery.watch(killed_at, set(held))
                victims.append(start_worker(f"victim-{len(victims)}", environment, tmp_path))
            if topping_up is not None:
                topping_up.join()
            submitter.submit(max(remaining, 0))
            total = len(submitter.invoices)
            statuses, _ = until("every sending Sent", lambda: database.all_final(total), within=600)
        finally:
            recovery.done.set()
            stop_all(api, survivor, *victims)
            submitter.close()
        recovery.join(timeout=60)
        ledger = reconcile(database, submitter.accepted, receiver.requests)

    # Every sending a killed worker held was taken over, its unfinished attempt recorded
    # under the dead worker's name.
    unrecorded = []
    for victim, held in killed:
        recorded = {(s, n) for s, n in lost_attempts(database, victim.lease_pattern)}
        unrecorded += [s for s, attempt in held.items() if (s, attempt) not in recorded]
    database.close()
    figures = Figures(
        "workers killed",
        invoices=ledger.invoices,
        faults=len(killed),
        fault_kind="SIGKILLs",
        lost=len(ledger.lost),
        repeats=ledger.repeats,
        recovery=recovery.seconds,
        notes={
            "sendings held at the kills": sum(len(h) for _, h in killed),
            "sendings delivered more than once": ledger.repeated_sendings,
            "kills with nothing held (not counted)": len(victims) - 1 - len(killed),
            "API answers": dict(submitter.codes),
            "seed": seed,
        },
    )
    report(figures)
    assert statuses == {"Sent": total}
    assert ledger.invoices == total >= invoices
    assert submitter.failures == []
    assert ledger.lost == []
    assert ledger.problems == []
    assert unrecorded == [], "each attempt a killed worker left unfinished is recorded"
    assert len(recovery.seconds) == len(killed), "every kill's sendings were taken over"
    assert set(submitter.codes) == {202}
