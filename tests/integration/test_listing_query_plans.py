"""Listing and grouping read indexes: their cost follows the rows returned, not the table.

The statements are explained with their real bound parameters (keyset position, bound,
IN lists), as the routes run them, over ~20k sendings with a realistic mix of statuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Connection, Executable, insert, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.sendings.cause_groups import (
    counts_statement,
    latest_reason_statement,
    spread_statement,
)
from invoice_outbox.sendings.filters import SendingFilter
from invoice_outbox.sendings.listing import Order, Position, count_statement, page_statement
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS
from invoice_outbox.sendings.status import Status

START = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = 20_000
CAUSES = ("http-503", "timeout", "smtp-550", "config", "connection-refused")
PRACTICES = [uuid.UUID(int=i + 1) for i in range(40)]
SYSTEMS = ("MediSwitch", "PracticeLedger", "Accounts mailbox")
AFTER = Position(START + timedelta(hours=1), uuid.UUID(int=7))
BOUND = START + timedelta(days=1)


class Explain(Executable, ClauseElement):
    """``EXPLAIN <statement>`` with the statement's parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement: Any, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return element.prefix + compiler.process(element.statement, **kw)


def _status(i: int) -> str:
    if i % 50 == 0:
        return "Aborted"
    if i % 50 == 1:
        return "Failed"
    return ("Sent", "Sent", "Sent", "Pending", "Cancelled", "Sending")[i % 6]


def _rows() -> list[dict[str, object]]:
    rows = []
    for i in range(ROWS):
        when = START + timedelta(seconds=i * 4)
        status = _status(i)
        failed = status in ("Aborted", "Failed")
        rows.append(
            {
                "id": uuid.uuid4(),
                "practice_id": PRACTICES[i % 40],
                "encounter_id": uuid.uuid4(),
                "invoice_id": uuid.uuid4(),
                "system": SYSTEMS[i % 3],
                "sending_type": "Invoice",
                "status": status,
                "attempts": 1,
                "sending_time": when,
                "sent_at": when if status == "Sent" else None,
                "cause": CAUSES[i % 5] if failed else None,
                "reason": f"reason {i}" if failed else None,
                "idempotency_key": uuid.uuid4().hex,
                "created_at": when,
                "updated_at": when,
            }
        )
    return rows


@pytest.fixture
def planner(database_url: str, engine_name: str) -> Iterator[Any]:
    engine = make_sync_engine(database_url)
    with engine.begin() as connection:
        connection.execute(insert(Sending), _rows())
        connection.execute(text("ANALYZE sendings" if engine_name == "postgres" else "ANALYZE"))

    def plan(statement: Any) -> str:
        prefix = "EXPLAIN QUERY PLAN " if engine_name == "sqlite" else "EXPLAIN "
        with engine.connect() as connection:
            return _plan_text(connection, Explain(statement, prefix))

    try:
        yield plan
    finally:
        engine.dispose()


def _plan_text(connection: Connection, explain: Explain) -> str:
    return "\n".join(str(row[-1]) for row in connection.execute(explain))


def _assert_indexed(plan: str, *indexes: str) -> None:
    assert any(index in plan for index in indexes), plan
    assert "Seq Scan" not in plan, plan
    # SQLite: every read of sendings goes through an index (subquery scans are fine).
    assert "SCAN sendings" not in plan.replace("SCAN sendings USING", ""), plan


def test_cause_grouping_is_one_pass_over_the_status_cause_index(planner: Any) -> None:
    plan = planner(counts_statement(SendingFilter()))
    _assert_indexed(plan, "ix_sendings_status_cause")
    filtered = planner(
        counts_statement(
            SendingFilter(statuses=frozenset({Status.ABORTED}), causes=frozenset({"timeout"}))
        )
    )
    _assert_indexed(filtered, "ix_sendings_status_cause")


def test_latest_reasons_are_index_lookups(planner: Any) -> None:
    keys = [("Aborted", cause) for cause in CAUSES] + [("Failed", None)]
    plan = planner(latest_reason_statement(SendingFilter(), keys))
    _assert_indexed(plan, "ix_sendings_status_cause")


def test_the_spread_of_a_group_reads_only_failures(planner: Any) -> None:
    plan = planner(spread_statement(SendingFilter()))
    _assert_indexed(plan, "ix_sendings_status_cause", "ix_sendings_status_time")


def test_a_filtered_page_after_a_cursor_uses_an_index(planner: Any) -> None:
    selection = SendingFilter(statuses=frozenset({Status.ABORTED}), causes=frozenset({"timeout"}))
    statement = page_statement(
        STATUS_VO_COLUMNS, selection, Order.SENDING_TIME, limit=101, after=AFTER, bound=BOUND
    )
    _assert_indexed(planner(statement), "ix_sendings_status_cause", "ix_sendings_status_time")
    _assert_indexed(
        planner(count_statement(selection, Order.SENDING_TIME)),
        "ix_sendings_status_cause",
        "ix_sendings_status_time",
    )


def test_a_page_over_every_status_merges_per_status_index_reads(planner: Any) -> None:
    statement = page_statement(
        STATUS_VO_COLUMNS,
        SendingFilter(),
        Order.SENDING_TIME,
        limit=101,
        after=AFTER,
        bound=BOUND,
    )
    plan = planner(statement)
    _assert_indexed(plan, "ix_sendings_status_time")
    assert plan.count("ix_sendings_status_time") >= len(Status), plan


def test_a_sent_page_reads_the_sent_at_index(planner: Any) -> None:
    start = START + timedelta(hours=2)
    extra = [
        Sending.sent_at >= start,
        Sending.sent_at < start + timedelta(days=1),
        Sending.status == Status.SENT.value,
    ]
    statement = page_statement(
        STATUS_VO_COLUMNS,
        SendingFilter(),
        Order.SENT_AT,
        limit=101,
        after=AFTER,
        bound=BOUND,
        extra=extra,
    )
    _assert_indexed(planner(statement), "ix_sendings_sent_at", "ix_sendings_status_time")
