"""Documents at rest: only the service that holds the key can read them (both engines).

- neither the raw SQLite file (with its WAL) nor a pg_dump holds a document's content, nor
  its plain sha256 (which would confirm a guessed document);
- a tampered or moved ciphertext is refused with a clear reason; the worker goes on;
- rotation re-encrypts under load, losing nothing; intake stays idempotent across it;
- start-up fails, naming INVOICE_OUTBOX_DOCUMENT_KEYS, when a key is missing or wrong.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from invoice_outbox.app import create_app
from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.intake import Submission, submit_invoices
from invoice_outbox.sendings.keyring import (
    KEYS_SETTING,
    DocumentKeyMissing,
    DocumentKeysInvalid,
    Keyring,
)
from invoice_outbox.sendings.keystore import key_counts
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.rotation import rotate
from invoice_outbox.settings import Settings
from invoice_outbox.state import AppState
from invoice_outbox.systems.directory import SystemsDirectory
from tests.conftest import PRACTICE_A, TEST_DOCUMENT_KEYS, build_settings, fixed_keyring
from tests.pipeline_helpers import (
    all_sendings,
    attempts_of,
    configure_system,
    invoice_body,
    running_worker,
)
from tests.pipeline_helpers import (
    submit as submit_over_api,
)
from tests.receivers import HttpReceiver

IN_CI = os.environ.get("CI", "").lower() == "true"


async def submit(state: AppState, submission: Submission, *, keyring: Keyring) -> list[Sending]:
    """Intake of one submission, as a process holding `keyring` makes it; its sendings."""
    [result] = await submit_invoices(
        state.engine, SystemsDirectory(), [submission], now=state.clock.now(), keyring=keyring
    )
    result.raise_refusal()
    return await all_sendings(state, submission.invoice_id)


NEW_KEYS = "k2:" + base64.b64encode(b"\x42" * 32).decode() + "," + TEST_DOCUMENT_KEYS


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    return "MediSwitch"


def _marked_document() -> tuple[str, dict[str, Any]]:
    marker = f"MARKER-{uuid.uuid4().hex}"
    return marker, {"Patient": marker, "Diagnosis": "J06.9", "Total": "520.00"}


def _raw_sqlite(url: str) -> bytes:
    path = Path(make_url(url).database or "")
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _pg_dump(url: str) -> bytes:
    binary = shutil.which("pg_dump")
    if binary is None:
        if IN_CI:
            pytest.fail("pg_dump is not installed; CI=true requires this test to run")
        pytest.skip("pg_dump is not installed (apt-get install postgresql-client)")
    parts = make_url(url)
    result = subprocess.run(
        [
            binary,
            "--host",
            parts.host or "127.0.0.1",
            "--port",
            str(parts.port or 5432),
            "--username",
            parts.username or "postgres",
            "--no-password",
            parts.database or "",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def raw_database(settings: Settings) -> bytes:
    """Every byte a thief of the database (file or dump) would get."""
    url = settings.database_url
    return _raw_sqlite(url) if url.startswith("sqlite") else _pg_dump(url)


def reveals(raw: bytes, secret: str) -> bool:
    """Whether `raw` holds `secret` as text, or as the hex a dump writes bytea columns in."""
    return secret.encode() in raw or secret.encode().hex().encode() in raw


async def test_a_stolen_database_reveals_no_document(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    settings: Settings,
) -> None:
    marker, document = _marked_document()
    await submit_over_api(client, practice_headers, invoice_body(document=document))
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [request] = receiver.requests
    assert request.body == orjson.dumps(document)  # the receiver gets it as submitted

    raw = raw_database(settings)
    assert b"MediSwitch" in raw  # the search does see the database's contents
    assert not reveals(raw, marker)
    assert not reveals(raw, hashlib.sha256(orjson.dumps(document)).hexdigest())
    async with state.engine.connect() as connection:
        [row] = (await connection.execute(select(Document))).all()
    assert (row.key_id, len(row.nonce)) == ("k2", 12)
    assert row.digest != hashlib.sha256(orjson.dumps(document)).hexdigest()


async def _tamper(state: AppState, document_id: uuid.UUID, **values: Any) -> None:
    async with state.engine.begin() as connection:
        await connection.execute(
            update(Document).where(Document.id == document_id).values(**values)
        )


async def _by_invoice(state: AppState) -> dict[str, Sending]:
    return {str(s.invoice_id): s for s in await all_sendings(state)}


async def test_tampered_ciphertext_aborts_its_sending_and_the_worker_goes_on(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    bodies = [invoice_body(document={"Invoice": n}) for n in range(3)]
    for body in bodies:
        await submit_over_api(client, practice_headers, body)
    sendings = await _by_invoice(state)
    tampered = sendings[bodies[0]["InvoiceId"]]
    async with state.engine.connect() as connection:
        sealed = await connection.scalar(
            select(Document.body).where(Document.id == tampered.document_id)
        )
    assert sealed is not None
    flipped = bytes([sealed[0] ^ 1]) + bytes(sealed[1:])
    assert tampered.document_id is not None
    await _tamper(state, tampered.document_id, body=flipped)

    async with running_worker(state) as worker:
        assert await worker.drain() == 3
    assert sorted(r.body for r in receiver.requests) == [b'{"Invoice":1}', b'{"Invoice":2}']
    after = await _by_invoice(state)
    refused = after[bodies[0]["InvoiceId"]]
    assert (refused.status, refused.cause) == ("Aborted", "document-unreadable")
    assert refused.reason is not None
    assert refused.reason.startswith("The stored document could not be decrypted: ")
    assert "Invoice" not in refused.reason
    assert "k2" not in refused.reason
    [attempt] = await attempts_of(state, refused.id)
    assert (attempt.outcome, attempt.reason) == ("Permanent", refused.reason)
    assert {after[b["InvoiceId"]].status for b in bodies[1:]} == {"Sent"}

    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{bodies[0]['InvoiceId']}",
        headers=practice_headers,
    )
    shown = detail.json()["Sendings"][0]
    assert shown["Reason"] == refused.reason


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
) -> None:
    """Copying invoice A's sealed document over B's row, or pointing C's sending at A's
    document, is refused: a ciphertext is bound to its row and to its invoice."""
    bodies = [invoice_body(document={"Invoice": name}) for name in "ABC"]
    for body in bodies:
        await submit_over_api(client, practice_headers, body)
    found = await _by_invoice(state)
    a, b, c = (found[body["InvoiceId"]] for body in bodies)
    assert a.document_id
    assert b.document_id
    assert c.document_id
    async with state.engine.connect() as connection:
        source = (
            await connection.execute(
                select(Document.key_id, Document.nonce, Document.body, Document.digest).where(
                    Document.id == a.document_id
                )
            )
        ).one()
    await _tamper(state, b.document_id, **source._asdict())
    async with state.engine.begin() as connection:
        await connection.execute(
            update(Sending).where(Sending.id == c.id).values(document_id=a.document_id)
        )

    async with running_worker(state) as worker:
        assert await worker.drain() == 3
    assert [r.body for r in receiver.requests] == [b'{"Invoice":"A"}']
    after = await _by_invoice(state)
    assert [after[body["InvoiceId"]].cause for body in bodies] == [
        None,
        "document-unreadable",
        "document-unreadable",
    ]


def _sync_rotate(settings: Settings, keys: str, batch_size: int) -> int:
    from invoice_outbox.sendings.keyring import keyring_from_entries, parse_entries

    keyring = keyring_from_entries(parse_entries(keys), source=KEYS_SETTING)
    engine = make_sync_engine(settings.database_url)
    try:
        return rotate(engine, keyring, batch_size=batch_size).rotated
    finally:
        engine.dispose()


def _counts(settings: Settings) -> dict[str, int]:
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return key_counts(connection)
    finally:
        engine.dispose()


async def _seed_under_old_key(state: AppState, count: int) -> list[bytes]:
    """`count` invoices sealed under t1 (as a process with the old keys wrote them)."""
    documents = [orjson.dumps({"Invoice": n, "Patient": f"P{n}"}) for n in range(count)]
    for document in documents:
        await submit(
            state,
            Submission(
                practice_id=PRACTICE_A,
                invoice_id=uuid.uuid4(),
                encounter_id=uuid.uuid4(),
                document=document,
                content_type="application/json",
            ),
            keyring=fixed_keyring(),
        )
    return documents


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Every process holds the new key k2 first and the old key t1 (phase 2 of a rotation).
    return build_settings(database_url, tmp_path, document_keys=SecretStr(NEW_KEYS))


async def test_rotation_under_load_loses_nothing(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    system: str,
    state: AppState,
    settings: Settings,
) -> None:
    expected = await _seed_under_old_key(state, 60)
    assert _counts(settings) == {"t1": 60}
    rotation = asyncio.create_task(asyncio.to_thread(_sync_rotate, settings, NEW_KEYS, 4))
    async with running_worker(state, concurrency=4) as worker:
        n = 0
        while not rotation.done():  # intake and delivery go on while rotation runs
            document = {"Invoice": f"during-{n}"}
            await submit_over_api(client, practice_headers, invoice_body(document=document))
            expected.append(orjson.dumps(document))
            await worker.drain()
            n += 1
        rotated = await rotation
        await worker.drain()
    assert rotated == 60
    assert n > 0

    statuses = {s.status for s in await all_sendings(state)}
    assert statuses == {"Sent"}
    assert sorted(r.body for r in receiver.requests) == sorted(expected)
    assert _counts(settings) == {"k2": len(expected)}
    # Nothing is left for a second run: rotation is resumable and idempotent.
    assert await asyncio.to_thread(_sync_rotate, settings, NEW_KEYS, 4) == 0


async def test_idempotent_intake_survives_rotation(state: AppState, settings: Settings) -> None:
    submission = Submission(
        practice_id=PRACTICE_A,
        invoice_id=uuid.uuid4(),
        encounter_id=uuid.uuid4(),
        document=b'{"Total":"100.00"}',
        content_type="application/json",
    )
    async with state.sessions() as session:
        await configure_system_in(session, state)
        await session.commit()
    [first] = await submit(state, submission, keyring=fixed_keyring())
    assert await asyncio.to_thread(_sync_rotate, settings, NEW_KEYS, 10) == 1
    [again] = await submit(state, submission, keyring=state.keyring)
    assert (again.id, again.document_id, again.idempotency_key) == (
        first.id,
        first.document_id,
        first.idempotency_key,
    )
    assert _counts(settings) == {"k2": 1}
    corrected = dataclasses.replace(submission, document=b'{"Total":"90.00"}')
    [replaced] = await submit(state, corrected, keyring=state.keyring)
    assert replaced.document_id != first.document_id


async def configure_system_in(session: Any, state: AppState) -> None:
    from invoice_outbox.systems.schemas import SystemIn
    from invoice_outbox.systems.service import put_system

    spec = SystemIn(Channel="Http", Url="http://127.0.0.1:9/in", Practices=[PRACTICE_A])
    await put_system(session, "MediSwitch", spec, now=state.clock.now())


@pytest.mark.parametrize(
    ("keys", "error", "words"),
    [
        ("k3:" + base64.b64encode(b"\x07" * 32).decode(), DocumentKeyMissing, "'t1'"),
        ("t1:" + base64.b64encode(b"\x07" * 32).decode(), DocumentKeysInvalid, "check value"),
    ],
    ids=["missing", "wrong"],
)
async def test_start_up_fails_naming_the_setting_without_the_right_key(
    system: str,
    state: AppState,
    database_url: str,
    tmp_path: Path,
    keys: str,
    error: type[Exception],
    words: str,
) -> None:
    await _seed_under_old_key(state, 1)
    app = create_app(build_settings(database_url, tmp_path, document_keys=SecretStr(keys)))
    with pytest.raises(error) as raised:
        async with app.router.lifespan_context(app):
            pass
    message = str(raised.value)
    assert KEYS_SETTING in message
    assert words in message
    assert keys.split(":")[1] not in message  # never the key itself


async def test_intake_answers_503_when_another_process_sealed_with_a_key_it_lacks(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str, state: AppState
) -> None:
    """A process started before a new key reached it cannot tell whether a resubmission is
    the same document: it must not replace it (that would deliver twice), so it asks to retry."""
    newer = fixed_keyring("k9:" + base64.b64encode(b"\x09" * 32).decode())
    body = invoice_body(document={"Total": "1.00"})
    submission = Submission(
        practice_id=PRACTICE_A,
        invoice_id=uuid.UUID(body["InvoiceId"]),
        encounter_id=uuid.UUID(body["EncounterId"]),
        document=orjson.dumps(body["Document"]),
        content_type="application/json",
    )
    await submit(state, submission, keyring=newer)
    response = await submit_over_api(client, practice_headers, body, expect=503)
    assert response.headers["Retry-After"] == "30"
    assert "lacks its key" in response.json()["Message"]
    [sending] = await all_sendings(state)
    assert sending.status == "Pending"
