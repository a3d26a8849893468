"""Migration 0005: plain-text documents are encrypted in batches, with progress; going back
decrypts them, and only with the key (both engines)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select, text

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.db.migrate import current_revision, downgrade, upgrade
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
    upgrade(url, "0003")
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
            connection.execute(insert(Sending), sendings)
        assert reveals(raw_database(settings), marker)  # the search finds plain text

        lines: list[str] = []
        upgrade(url, keyring=fixed_keyring(), progress=lines.append)
        assert lines[0] == f"encrypting {COUNT:,} documents, 500 at a time"
        assert lines[-1] == f"  encrypting: {COUNT:,}/{COUNT:,} documents"
        assert not reveals(raw_database(settings), marker)

        with engine.connect() as connection:
            stored = {row.id: row for row in connection.execute(select(Document))}
            owners = {row.document_id: row for row in connection.execute(select(Sending))}
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

        other = fixed_keyring("k9:" + base64.b64encode(b"\x09" * 32).decode())
        with pytest.raises(DocumentKeyMissing):
            downgrade(url, "0003", keyring=other)
        assert _revision(url) == "0005"  # nothing changed without the key

        downgrade(url, "0003", keyring=fixed_keyring(), progress=lines.append)
        assert _revision(url) == "0003"
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT sha256, body FROM documents")).all()
        back = {bytes(body): sha for sha, body in rows}
        assert back == {d["body"]: d["sha256"] for d in documents[:COUNT]}
    finally:
        engine.dispose()


def _uuid_param(url: str, value: uuid.UUID) -> str:
    """How the Uuid type stores an id on each engine (raw SQL skips the type)."""
    return value.hex if url.startswith("sqlite") else str(value)
