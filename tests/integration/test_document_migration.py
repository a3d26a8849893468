"""Migration 0005: plain-text documents are encrypted in batches, with progress; going back
decrypts them, and only with the key (both engines).  0004 and 0005 run in order both ways."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import column, insert, select, table, text
from sqlalchemy.sql.expression import TableClause

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.migrate import current_revision, downgrade, head_revision, upgrade
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import DocumentKeyMissing
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.sealing import unseal
from invoice_outbox.settings import Settings
from tests.conftest import PRACTICE_A, build_settings, fixed_keyring
from tests.databases import PostgresDatabases, SqliteDatabases
from tests.integration.test_documents_at_rest import raw_database, reveals

COUNT = 1201  # three batches of 500
WHEN = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def empty_database_url(
    engine_name: str, request: pytest.FixtureRequest, _sqlite_databases: SqliteDatabases
) -> str:
    if engine_name == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("_postgres_databases")
        return databases.empty()
    return _sqlite_databases.empty()


def _plain_rows(marker: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    documents, sendings = [], []
    for n in range(COUNT + 1):
        document_id = uuid.uuid4()
        body = orjson.dumps({"Patient": f"{marker}-{n}", "Total": n})
        documents.append(
            {
                "id": document_id,
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_type": "application/json",
                "body": body,
                "created_at": WHEN,
            }
        )
        if n == COUNT:
            break  # the last one is an orphan: a replaced document no sending points at
        sendings.append(
            {
                "id": uuid.uuid4(),
                "practice_id": PRACTICE_A,
                "encounter_id": uuid.uuid4(),
                "invoice_id": uuid.uuid4(),
                "system": "MediSwitch",
                "sending_type": "Invoice",
                "status": "Pending",
                "attempts": 0,
                "round_attempts": 0,
                "sending_time": WHEN,
                "next_attempt_at": WHEN,
                "idempotency_key": uuid.uuid4().hex,
                "document_id": document_id,
                "created_at": WHEN,
                "updated_at": WHEN,
            }
        )
    return documents, sendings


def _table_at_0004(row: dict[str, Any]) -> TableClause:
    """The sendings table as revision 0004 has it, for `row`'s columns only (the model's
    later columns, with their Python defaults, do not exist yet)."""
    columns = Sending.__table__.c
    return table("sendings", *(column(name, columns[name].type) for name in row))


def _revision(url: str) -> str | None:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()


def test_plain_documents_are_encrypted_and_only_the_key_brings_them_back(
    empty_database_url: str, tmp_path: Any
) -> None:
    url = empty_database_url
    settings: Settings = build_settings(url, tmp_path)
    marker = f"MARKER-{uuid.uuid4().hex}"
    upgrade(url, "0004")
    documents, sendings = _plain_rows(marker)
    engine = make_sync_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO documents (id, sha256, content_type, body, created_at) "
                    "VALUES (:id, :sha256, :content_type, :body, :created_at)"
                ).bindparams(),
                [{**d, "id": _uuid_param(url, d["id"])} for d in documents],
            )
            connection.execute(insert(_table_at_0004(sendings[0])), sendings)
        assert reveals(raw_database(settings), marker)  # the search finds plain text

        lines: list[str] = []
        upgrade(url, "0005", keyring=fixed_keyring(), progress=lines.append)
        assert lines[0] == f"encrypting {COUNT:,} documents, 500 at a time"
        assert lines[-1] == f"  encrypting: {COUNT:,}/{COUNT:,} documents"
        assert not reveals(raw_database(settings), marker)

        with engine.connect() as connection:
            # Columns as of 0005 (later revisions add more to the models).
            stored = {
                row.id: row
                for row in connection.execute(
                    select(
                        Document.id,
                        Document.practice_id,
                        Document.invoice_id,
                        Document.key_id,
                        Document.nonce,
                        Document.body,
                        Document.content_type,
                    )
                )
            }
            owners = {
                row.document_id: row
                for row in connection.execute(
                    select(Sending.document_id, Sending.practice_id, Sending.invoice_id)
                )
            }
        assert len(stored) == COUNT
        assert set(owners) == set(stored)
        for document in documents[:COUNT]:
            row, owner = stored[document["id"]], owners[document["id"]]
            assert row.key_id == "t1"
            assert row.body != document["body"]
            assert (row.practice_id, row.invoice_id) == (owner.practice_id, owner.invoice_id)
            opened = unseal(
                fixed_keyring(),
                key_id=row.key_id,
                nonce=row.nonce,
                body=row.body,
                document_id=row.id,
                practice_id=owner.practice_id,
                invoice_id=owner.invoice_id,
                content_type=row.content_type,
            )
            assert opened == document["body"]

        downgrade(url, "0005", keyring=fixed_keyring())  # below the later revisions first
        other = fixed_keyring("k9:" + base64.b64encode(b"\x09" * 32).decode())
        with pytest.raises(DocumentKeyMissing):
            downgrade(url, "0004", keyring=other)
        assert _revision(url) == "0005"  # nothing changed without the key

        downgrade(url, "0004", keyring=fixed_keyring(), progress=lines.append)
        assert _revision(url) == "0004"
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT sha256, body FROM documents")).all()
        back = {bytes(body): sha for sha, body in rows}
        assert back == {d["body"]: d["sha256"] for d in documents[:COUNT]}
    finally:
        engine.dispose()


def _uuid_param(url: str, value: uuid.UUID) -> str:
    """How the Uuid type stores an id on each engine (raw SQL skips the type)."""
    return value.hex if url.startswith("sqlite") else str(value)


def test_0004_and_0005_run_in_order_both_ways(empty_database_url: str, tmp_path: Any) -> None:
    """From 0003 with a plain document and a sending discarded the old way (Aborted, reason
    prefixed), up to the head and back down: 0004 moves the status, 0005 seals the document,
    and rebuilding sendings on SQLite keeps its document link and its attempts."""
    url = empty_database_url
    settings: Settings = build_settings(url, tmp_path)
    marker = f"MARKER-{uuid.uuid4().hex}"
    body = orjson.dumps({"Patient": marker})
    document_id, sending_id, invoice_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    upgrade(url, "0003")
    engine = make_sync_engine(url)
    p = _uuid_param
    lines: list[str] = []
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO documents (id, sha256, content_type, body, created_at) "
                    "VALUES (:id, :sha256, 'application/json', :body, :when)"
                ),
                {
                    "id": p(url, document_id),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "body": body,
                    "when": WHEN,
                },
            )
            connection.execute(
                text(
                    "INSERT INTO sendings (id, practice_id, encounter_id, invoice_id, system, "
                    "sending_type, status, reason, attempts, round_attempts, sending_time, "
                    "idempotency_key, document_id, created_at, updated_at) VALUES (:id, "
                    ":practice, :encounter, :invoice, 'MediSwitch', 'Invoice', 'Aborted', "
                    "'Discarded by bob: paid cash', 1, 1, :when, :key, :document, :when, :when)"
                ),
                {
                    "id": p(url, sending_id),
                    "practice": p(url, PRACTICE_A),
                    "encounter": p(url, uuid.uuid4()),
                    "invoice": p(url, invoice_id),
                    "key": uuid.uuid4().hex,
                    "document": p(url, document_id),
                    "when": WHEN,
                },
            )
            connection.execute(
                text(
                    "INSERT INTO attempts (sending_id, number, started_at, duration_ms, "
                    "outcome, code, reason, worker) VALUES (:id, 1, :when, 5, 'Permanent', "
                    "422, 'refused', 'w1')"
                ),
                {"id": p(url, sending_id), "when": WHEN},
            )

        upgrade(url, keyring=fixed_keyring(), progress=lines.append)
        assert _revision(url) == head_revision()
        assert not reveals(raw_database(settings), marker)
        with engine.connect() as connection:
            sending = connection.execute(select(Sending)).one()
            document = connection.execute(select(Document)).one()
            attempts = connection.scalar(text("SELECT count(*) FROM attempts"))
        assert (sending.status, sending.discarded_by) == ("Discarded", "bob")
        assert sending.document_id == document.id == document_id
        assert (document.practice_id, document.invoice_id) == (PRACTICE_A, invoice_id)
        assert attempts == 1
        opened = unseal(
            fixed_keyring(),
            key_id=document.key_id,
            nonce=document.nonce,
            body=document.body,
            document_id=document_id,
            practice_id=PRACTICE_A,
            invoice_id=invoice_id,
            content_type=document.content_type,
        )
        assert opened == body

        downgrade(url, "0003", keyring=fixed_keyring(), progress=lines.append)
        assert _revision(url) == "0003"
        with engine.connect() as connection:
            status, reason, linked = connection.execute(
                text("SELECT status, reason, document_id FROM sendings")
            ).one()
            sha, stored = connection.execute(text("SELECT sha256, body FROM documents")).one()
            attempts = connection.scalar(text("SELECT count(*) FROM attempts"))
        assert (status, reason) == ("Aborted", "Discarded by bob: paid cash")
        assert linked is not None
        assert (bytes(stored), sha) == (body, hashlib.sha256(body).hexdigest())
        assert attempts == 1
    finally:
        engine.dispose()
