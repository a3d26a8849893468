"""A database error during a submission never writes the invoice into the logs.

The documents INSERT is made to fail with an error that is logged (not a constraint violation,
which the intake answers as a conflict): on PostgreSQL a trigger casts the document to a
number, so the server's message quotes the document; on SQLite a trigger calls a function that
does not exist, so only the statement's parameters could carry it.  Everything logged --
pytest's capture of the records and the service's JSON lines -- is searched for the document's
content, as text and as the hex PostgreSQL shows bytea in.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from invoice_outbox.logs import JsonFormatter
from invoice_outbox.state import AppState
from tests.pipeline_helpers import configure_system, invoice_body, submit

MARKER = "PATIENT-MARKER-7f3a"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The service's JSON log lines, as `invoice-outbox serve` writes them."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield output
    finally:
        root.removeHandler(handler)


async def _refuse_documents_with_the_marker(state: AppState) -> None:
    async with state.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "CREATE FUNCTION refuse_document() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN PERFORM convert_from(NEW.body, 'UTF8')::integer; RETURN NEW; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_document BEFORE INSERT ON documents "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_document()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER refuse_document BEFORE INSERT ON documents "
                    "BEGIN SELECT no_such_function(NEW.body); END"
                )
            )


async def test_a_failed_document_insert_logs_no_document_content(
    client: httpx.AsyncClient,
    state: AppState,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    json_log: io.StringIO,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/invoices")
    await _refuse_documents_with_the_marker(state)
    caplog.set_level(logging.INFO)  # the service's level (logs.configure_logging)
    document = {"Patient": {"Name": MARKER, "Diagnosis": f"{MARKER} J45.9"}}

    response = await submit(client, practice_headers, invoice_body(document=document), expect=None)

    assert response.status_code == 500
    assert response.json() == {"Message": "An error has occurred."}
    logged = [r for r in caplog.records if getattr(r, "action", None) == "request.error"]
    assert logged, "the database error was not logged at all"
    assert "documents" in json_log.getvalue()  # the statement is logged; its values are not
    hexed = MARKER.encode().hex()
    everything = "\n".join(
        [caplog.text, json_log.getvalue(), *(str(r.__dict__) for r in caplog.records)]
    )
    assert MARKER not in everything
    assert hexed not in everything
    assert "[parameters:" not in everything  # SQLite shows the body as <memory at ...>: no
    assert "SQL parameters hidden" in everything  # proof on its own that parameters are hidden
