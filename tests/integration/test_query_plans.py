"""Hot reads use their index: cost follows the rows returned, not the table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import status_vo_rows
from invoice_outbox.sendings.status import Status
from invoice_outbox.systems.models import System
from invoice_outbox.worker.lane_sql import CLAIM_LANES_SQL

START = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(count: int, aborted_every: int) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        when = START + timedelta(seconds=i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "practice_id": uuid.uuid4(),
                "encounter_id": uuid.uuid4(),
                "invoice_id": uuid.uuid4(),
                "system": "MediSwitch",
                "sending_type": "Invoice",
                "status": "Aborted" if i % aborted_every == 0 else "Sent",
                "attempts": 1,
                "sending_time": when,
                "idempotency_key": uuid.uuid4().hex,
                "created_at": when,
                "updated_at": when,
            }
        )
    return rows


def test_aborted_list_uses_the_status_index(database_url: str, engine_name: str) -> None:
    engine = make_sync_engine(database_url)
    statement = status_vo_rows(Status.ABORTED)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Sending), _rows(20_000, aborted_every=400))
            if engine_name == "postgres":
                connection.execute(text("ANALYZE sendings"))
            sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN QUERY PLAN " if engine_name == "sqlite" else "EXPLAIN "
            plan = "\n".join(str(row[-1]) for row in connection.execute(text(prefix + sql)))
    finally:
        engine.dispose()
    assert "ix_sendings_status_time" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "SCAN sendings" not in plan.replace("SCAN sendings USING", ""), plan


@pytest.mark.postgres_only
def test_the_workers_lane_claim_reads_the_due_and_in_flight_indexes(
    database_url: str, engine_name: str
) -> None:
    engine = make_sync_engine(database_url)
    due = [
        {**row, "status": "Pending", "next_attempt_at": START} for row in _rows(50, aborted_every=1)
    ]
    systems = [
        {
            "name": name,
            "channel": "Http",
            "settings": {"Url": "https://example.org/"},
            "timeout_seconds": 30.0,
            "retry_policy": {},
            "enabled": True,
            "circuit": "Healthy",
            "consecutive_failures": 0,
            "created_at": START,
            "updated_at": START,
        }
        for name in ("MediSwitch", "Ledger", "Mailbox")
    ]
    try:
        with engine.begin() as connection:
            connection.execute(insert(System), systems)
            connection.execute(insert(Sending), _rows(20_000, aborted_every=400) + due)
            connection.execute(text("ANALYZE sendings"))
            connection.execute(text("ANALYZE systems"))
            params = {"worker": "w", "now": START, "expires": START, "limit": 16}
            explain = text("EXPLAIN " + CLAIM_LANES_SQL.text)
            plan = "\n".join(str(row[0]) for row in connection.execute(explain, params))
    finally:
        engine.dispose()
    assert "ix_sendings_due_by_system" in plan, plan
    assert "Seq Scan on sendings" not in plan, plan
