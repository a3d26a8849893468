"""Re-encrypting documents under the newest key (``invoice-outbox keys rotate``).

Documents sealed under any key but the current one are taken `batch_size` at a time, key by
key in id order (the ``(key_id, id)`` index).  Each batch is read, opened, sealed again under
the current key (a new nonce, and the digest recomputed under the new key, so intake still
recognises resubmissions) and written in its own short transaction; each row's write is
guarded by its old nonce, so a row changed meanwhile is left alone, and one purged meanwhile is
simply gone.

- Resumable: what a batch rewrote is committed; after a crash, running it again picks up the
  documents still under an old key.  Nothing is held between batches.
- Safe while workers deliver: a worker reads a document's key id, nonce and ciphertext in one
  row, so it sees the old version or the new one whole; it holds both keys (rotate only once
  every process has the new key, see README "Documents at rest").
- A document that fails authentication is left as it is and reported (its sendings fail
  visibly when delivered); the old key must stay until such documents are gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update

from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.sendings.keystore import stored_key_ids
from invoice_outbox.sendings.sealing import DocumentUnreadable, seal, unseal

DEFAULT_BATCH = 500


@dataclass(slots=True)
class RotationReport:
    """What a rotation did: documents rewritten, and those that could not be opened."""

    rotated: int = 0
    unreadable: list[uuid.UUID] = field(default_factory=list)


def pending(connection: Connection, keyring: Keyring) -> int:
    """How many documents are sealed under a key other than the current one."""
    return int(
        connection.scalar(select(func.count()).where(Document.key_id != keyring.current.kid)) or 0
    )


_COLUMNS = (
    Document.id,
    Document.practice_id,
    Document.invoice_id,
    Document.content_type,
    Document.key_id,
    Document.nonce,
    Document.body,
)
_table = cast(Table, Document.__table__)
_GUARDED = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"), _table.c.nonce == bindparam("b_old_nonce"))
    .values(
        key_id=bindparam("b_key_id"),
        nonce=bindparam("b_nonce"),
        body=bindparam("b_body"),
        digest=bindparam("b_digest"),
    )
)


def _rotate_batch(
    connection: Connection, keyring: Keyring, kid: str, after: uuid.UUID | None, size: int
) -> tuple[int, uuid.UUID | None, RotationReport]:
    query = select(*_COLUMNS).where(Document.key_id == kid).order_by(Document.id).limit(size)
    if after is not None:
        query = query.where(Document.id > after)
    rows = connection.execute(query).all()
    report = RotationReport()
    if not rows:
        return 0, None, report
    current = keyring.current
    values = []
    for row in rows:
        try:
            plain = unseal(
                keyring,
                key_id=row.key_id,
                nonce=row.nonce,
                body=row.body,
                document_id=row.id,
                practice_id=row.practice_id,
                invoice_id=row.invoice_id,
                content_type=row.content_type,
            )
        except DocumentUnreadable:
            report.unreadable.append(row.id)
            continue
        sealed = seal(
            current,
            document_id=row.id,
            practice_id=row.practice_id,
            invoice_id=row.invoice_id,
            content_type=row.content_type,
            plain=plain,
        )
        values.append(
            {
                "b_id": row.id,
                "b_old_nonce": row.nonce,
                "b_key_id": sealed.key_id,
                "b_nonce": sealed.nonce,
                "b_body": sealed.body,
                "b_digest": sealed.digest,
            }
        )
    if values:
        connection.execute(_GUARDED, values)
    report.rotated = len(values)
    return len(rows), rows[-1].id, report


def rotate(
    engine: Engine,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-seal every document under `keyring.current`; `progress(n)` after each batch.

    Raises `DocumentKeyMissing` when a document's key is not held (verify the keyring first).
    """
    total = RotationReport()
    with engine.connect() as connection:
        old = [kid for kid in stored_key_ids(connection) if kid != keyring.current.kid]
    for kid in old:
        keyring.require(kid)
        after: uuid.UUID | None = None
        while True:
            with engine.begin() as connection:
                seen, after, batch = _rotate_batch(connection, keyring, kid, after, batch_size)
            if not seen:
                break
            total.rotated += batch.rotated
            total.unreadable += batch.unreadable
            if progress is not None:
                progress(seen)
    return total
