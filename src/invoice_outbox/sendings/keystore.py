"""The database's side of document keys: which keys sealed stored documents, and proof that a
process holds the right ones.

`verify_keyring` runs at every start-up (serve, worker, demo, keys commands, the encrypting
migration).  It refuses to start when a stored document's key is not held, or when a held key
has the id of a known key but other bytes (a wrong key would make every document look
tampered), and records the check value of each held key not seen before.  Messages name
``INVOICE_OUTBOX_DOCUMENT_KEYS``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from invoice_outbox.sendings.documents import Document, DocumentKeyRecord
from invoice_outbox.sendings.keyring import (
    KEYS_SETTING,
    DocumentKeyMissing,
    DocumentKeysInvalid,
    Keyring,
    load_keyring,
)
from invoice_outbox.settings import Settings

# A loose index scan: one index probe per distinct key id, however many documents there are.
_STORED_KEY_IDS = text(
    "WITH RECURSIVE k(kid) AS ("
    " SELECT min(key_id) FROM documents"
    " UNION ALL"
    " SELECT (SELECT min(d.key_id) FROM documents d WHERE d.key_id > k.kid)"
    " FROM k WHERE k.kid IS NOT NULL"
    ") SELECT kid FROM k WHERE kid IS NOT NULL"
)


def stored_key_ids(connection: Connection) -> list[str]:
    """The ids of the keys stored documents are sealed under, in order."""
    return [str(kid) for kid in connection.execute(_STORED_KEY_IDS).scalars()]


def key_counts(connection: Connection) -> dict[str, int]:
    """How many documents each key seals."""
    rows = connection.execute(
        select(Document.key_id, func.count()).group_by(Document.key_id).order_by(Document.key_id)
    )
    return {str(kid): int(n) for kid, n in rows}


def _insert_ignoring_duplicates(connection: Connection) -> object:
    if connection.dialect.name == "postgresql":
        return postgresql_insert(DocumentKeyRecord).on_conflict_do_nothing()
    if connection.dialect.name == "sqlite":
        return sqlite_insert(DocumentKeyRecord).on_conflict_do_nothing()
    return insert(DocumentKeyRecord)


def _checks(connection: Connection) -> dict[str, str]:
    rows = connection.execute(select(DocumentKeyRecord.id, DocumentKeyRecord.check_value))
    return {str(kid): str(check) for kid, check in rows}


def _refuse_wrong_keys(keyring: Keyring, checks: dict[str, str]) -> None:
    wrong = [key.kid for key in keyring.keys if checks.get(key.kid, key.check) != key.check]
    if wrong:
        raise DocumentKeysInvalid(
            f"{keyring.source}: key(s) {', '.join(map(repr, wrong))} are not the keys of that "
            "id which sealed this database's documents (their check values differ); restore the "
            f"right key material in {KEYS_SETTING}, or give a new key a new id"
        )


def verify_keyring(connection: Connection, keyring: Keyring, *, now: datetime) -> None:
    """Refuse a keyring that cannot open every stored document; register its keys (the caller
    commits).  Raises `DocumentKeysInvalid` or `DocumentKeyMissing`.

    A database not yet migrated this far holds no sealed document: nothing to check (the
    process starts, and says "migrations pending" when asked whether it is ready)."""
    if not inspect(connection).has_table(DocumentKeyRecord.__tablename__):
        return
    _refuse_wrong_keys(keyring, _checks(connection))
    missing = [kid for kid in stored_key_ids(connection) if keyring.get(kid) is None]
    if missing:
        raise DocumentKeyMissing(
            f"{keyring.source} does not hold the key(s) {', '.join(map(repr, missing))} that "
            f"stored documents are encrypted under; add them to {KEYS_SETTING} after the key "
            "that encrypts (see `invoice-outbox keys status`)"
        )
    rows = [{"id": k.kid, "check_value": k.check, "created_at": now} for k in keyring.keys]
    connection.execute(_insert_ignoring_duplicates(connection), rows)  # type: ignore[call-overload]
    _refuse_wrong_keys(keyring, _checks(connection))  # another process may have won a race


async def open_keyring(
    engine: AsyncEngine, settings: Settings, *, now: datetime, keyring: Keyring | None = None
) -> Keyring:
    """The process's keyring (loaded from settings unless given), verified and registered."""
    keyring = keyring or load_keyring(settings)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: verify_keyring(sync, keyring, now=now))
    return keyring
