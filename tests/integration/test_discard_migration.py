"""Migration 0004: discarded sendings (an Aborted row whose reason had the discard prefix)
become `Discarded` with who, when and why in columns; downgrade writes the old form back.
Both engines, on a schema built by the migrations up to 0003."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.migrate import alembic_config, upgrade
from tests.databases import PostgresDatabases, SqliteDatabases

CREATED = datetime(2026, 2, 5, 10, 0, tzinfo=UTC)
DISCARDED_AT = datetime(2026, 2, 5, 12, 30, tzinfo=UTC)


@pytest.fixture
def engine(
    engine_name: str, request: pytest.FixtureRequest, _sqlite_databases: SqliteDatabases
) -> Iterator[Engine]:
    if engine_name == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("_postgres_databases")
        url = databases.empty()
    else:
        url = _sqlite_databases.empty()
    upgrade(url, "0003")
    built = make_sync_engine(url)
    try:
        yield built
    finally:
        built.dispose()


def _uuid(engine: Engine, value: uuid.UUID) -> Any:
    return value if engine.dialect.name == "postgresql" else value.hex


def _when(engine: Engine, value: datetime) -> datetime:
    """As the application stores it: timestamptz, or naive UTC on SQLite."""
    return value if engine.dialect.name == "postgresql" else value.replace(tzinfo=None)


def _add_sending(engine: Engine, status: str, reason: str | None) -> uuid.UUID:
    sending_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, "
                "sending_type, status, reason, cause, attempts, round_attempts, sending_time, "
                "idempotency_key, created_at, updated_at) VALUES (:id, :ids, :ids, :ids, "
                "'MediSwitch', 'Invoice', :status, :reason, 'http-422', 1, 1, :when, :key, "
                ":when, :updated)"
            ),
            {
                "id": _uuid(engine, sending_id),
                "ids": _uuid(engine, uuid.uuid4()),
                "status": status,
                "reason": reason,
                "when": _when(engine, CREATED),
                "key": uuid.uuid4().hex,
                "updated": _when(engine, DISCARDED_AT),
            },
        )
        connection.execute(
            text(
                "INSERT INTO attempts (sending_id, number, started_at, duration_ms, outcome, "
                "code, reason, worker) VALUES (:id, 1, :when, 40, 'Permanent', 422, 'x', 'w')"
            ),
            {"id": _uuid(engine, sending_id), "when": _when(engine, CREATED)},
        )
    return sending_id


def _audit_discard(engine: Engine, sending_id: uuid.UUID, actor: str, reason: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_entries (time, actor, actor_role, action, reason, target, "
                "affected, affected_count, details) VALUES (:time, :actor, 'admin', "
                "'sendings.discard', :reason, :target, :affected, 1, :details)"
            ),
            {
                "time": _when(engine, DISCARDED_AT),
                "actor": actor,
                "reason": reason,
                "target": str(sending_id),
                "affected": json.dumps([str(sending_id)]),
                "details": json.dumps({"PreviousReason": "MediSwitch refused it: unknown member"}),
            },
        )


def _rows(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    with engine.connect() as connection:
        columns = [c["name"] for c in inspect(connection).get_columns("sendings")]
        wanted = [
            c
            for c in ("status", "reason", "discarded_at", "discarded_by", "discard_reason")
            if c in columns
        ]
        rows = connection.execute(text(f"SELECT id, {', '.join(wanted)} FROM sendings"))  # noqa: S608
        found = {uuid.UUID(str(row[0])): dict(zip(wanted, row[1:], strict=True)) for row in rows}
        attempts = connection.execute(text("SELECT count(*) FROM attempts")).scalar_one()
    for values in found.values():
        values["attempts_in_table"] = attempts
        moment = values.get("discarded_at")
        if isinstance(moment, str):  # SQLite without the model's type: naive UTC text
            values["discarded_at"] = datetime.fromisoformat(moment).replace(tzinfo=UTC)
        elif isinstance(moment, datetime) and moment.tzinfo is None:
            values["discarded_at"] = moment.replace(tzinfo=UTC)
    return found


def test_discarded_rows_move_to_their_own_status_and_back(engine: Engine) -> None:
    audited = _add_sending(engine, "Aborted", "Discarded by alice: duplicate: re-issued")
    _audit_discard(engine, audited, "alice", "duplicate: re-issued")
    unaudited = _add_sending(engine, "Aborted", "Discarded by bob: patient paid cash")
    aborted = _add_sending(engine, "Aborted", "MediSwitch answered HTTP 503")
    lookalike = _add_sending(engine, "Failed", "Discarded by nobody: still failing")
    url = engine.url.render_as_string(hide_password=False)

    upgrade(url)

    rows = _rows(engine)
    assert rows[audited] == {
        "status": "Discarded",
        "reason": "MediSwitch refused it: unknown member",  # back from the audit entry
        "discarded_at": DISCARDED_AT,
        "discarded_by": "alice",
        "discard_reason": "duplicate: re-issued",
        "attempts_in_table": 4,  # rebuilding sendings (SQLite) kept every attempt
    }
    assert rows[unaudited] == {
        "status": "Discarded",
        "reason": "Discarded by bob: patient paid cash",  # no audit entry: nothing better
        "discarded_at": DISCARDED_AT,  # the row's last change
        "discarded_by": "bob",
        "discard_reason": "patient paid cash",
        "attempts_in_table": 4,
    }
    assert (rows[aborted]["status"], rows[aborted]["discarded_by"]) == ("Aborted", None)
    assert (rows[lookalike]["status"], rows[lookalike]["discarded_by"]) == ("Failed", None)
    discarded_later = _add_sending(engine, "Discarded", "a new one")  # the check allows it

    command.downgrade(alembic_config(url), "0003")

    rows = _rows(engine)
    assert rows[audited]["status"] == rows[unaudited]["status"] == "Aborted"
    assert rows[audited]["reason"] == "Discarded by alice: duplicate: re-issued"
    assert rows[unaudited]["reason"] == "Discarded by bob: patient paid cash"
    assert rows[discarded_later]["status"] == "Aborted"
    assert rows[aborted] == {
        "status": "Aborted",
        "reason": "MediSwitch answered HTTP 503",
        "attempts_in_table": 5,
    }
    with pytest.raises(IntegrityError):
        _add_sending(engine, "Discarded", "refused by the narrower check again")
