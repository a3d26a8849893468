"""documents encrypted at rest (AES-256-GCM), with rotatable keys

Revision ID: 0005
Revises: 0004

Upgrade: the ``document_keys`` table (a check value per key); on ``documents`` the columns
``practice_id``, ``invoice_id`` (what a ciphertext is bound to), ``key_id``, ``nonce``, and
``sha256`` renamed ``digest`` (now a keyed HMAC); then every plain-text document is sealed under
the current key, in batches of 500 in the migration's transaction, with progress lines.  A crash
rolls the whole step back; running ``invoice-outbox migrate`` again starts it afresh.
Documents no sending points at (replaced ones, which retention would purge) are deleted: there
is no invoice to bind them to.  Afterwards `migrate.upgrade` compacts the table so the plain
text does not linger in free pages.

Downgrade decrypts every document back to plain text: it needs the keys (from the caller or
``INVOICE_OUTBOX_DOCUMENT_KEYS`` / the key file), and stops, changing nothing, without them.

Why no table rebuild on SQLite: rebuilding ``documents`` copies every (large) row once more
and drops the old table; with foreign keys on, that drop would set every
``sendings.document_id`` to NULL (ON DELETE SET NULL).  The migration environment switches
them off (`env.py`), but this step does not depend on it.  So new columns are added NOT NULL
with a placeholder default (SQLite requires one), which PostgreSQL then drops; SQLite keeps it
(unused: every insert names every column).

Unlike the other migrations, this one imports application code: the document format
(`sendings.sealing`: AES-GCM, associated data, digests) and key loading (`sendings.keyring`).
The format it writes must be the one the application reads, and it is version-tagged (``v1``
in the associated data and the HKDF labels).  If that code ever changes its format, copy the
v1 functions in here first, so this revision keeps writing (and its downgrade reading) v1.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from invoice_outbox.migrate import COMPACT, KEYRING, PROGRESS
from invoice_outbox.sendings.keyring import Keyring, load_keyring
from invoice_outbox.sendings.sealing import DocumentUnreadable, seal, unseal

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
PROGRESS_EVERY_SECONDS = 2.0
log = logging.getLogger("invoice_outbox.migrations")

_documents = sa.table(
    "documents",
    sa.column("id", sa.Uuid()),
    sa.column("practice_id", sa.Uuid()),
    sa.column("invoice_id", sa.Uuid()),
    sa.column("content_type", sa.String()),
    sa.column("key_id", sa.String()),
    sa.column("nonce", sa.LargeBinary()),
    sa.column("body", sa.LargeBinary()),
    sa.column("digest", sa.String()),
)
_sendings = sa.table(
    "sendings",
    sa.column("document_id", sa.Uuid()),
    sa.column("practice_id", sa.Uuid()),
    sa.column("invoice_id", sa.Uuid()),
)
_keys = sa.table(
    "document_keys",
    sa.column("id", sa.String()),
    sa.column("check_value", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_NEW_COLUMNS = ("practice_id", "invoice_id", "key_id", "nonce")


def _placeholders(dialect: str) -> dict[str, sa.Column[Any]]:
    zero = uuid.UUID(int=0)
    zero_uuid = f"'{zero}'" if dialect == "postgresql" else f"'{zero.hex}'"
    return {
        "practice_id": sa.Column(
            "practice_id", sa.Uuid(), nullable=False, server_default=sa.text(zero_uuid)
        ),
        "invoice_id": sa.Column(
            "invoice_id", sa.Uuid(), nullable=False, server_default=sa.text(zero_uuid)
        ),
        "key_id": sa.Column(
            "key_id", sa.String(length=32), nullable=False, server_default=sa.text("''")
        ),
        "nonce": sa.Column("nonce", sa.LargeBinary(), nullable=False, server_default=sa.text("''")),
    }


def _progress() -> Callable[[str], None]:
    given = context.config.attributes.get(PROGRESS)
    return given if given is not None else log.info


def _keyring() -> Keyring:
    given = context.config.attributes.get(KEYRING)
    if given is not None:
        return given  # type: ignore[no-any-return]
    from invoice_outbox.settings import load_settings

    return load_keyring(load_settings())


class _Meter:
    """Progress lines: at most one every couple of seconds, and the last one."""

    def __init__(self, verb: str, total: int) -> None:
        self.verb, self.total, self.done = verb, total, 0
        self.say = _progress()
        self.last = time.monotonic()
        self.say(f"{verb} {total:,} documents, {BATCH} at a time")

    def add(self, count: int) -> None:
        self.done += count
        if self.done >= self.total or time.monotonic() - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = time.monotonic()
            self.say(f"  {self.verb}: {self.done:,}/{self.total:,} documents")


def _batches(bind: sa.Connection, columns: Sequence[str]) -> Any:
    """Every document, BATCH rows at a time, in id order (keyset paging on the primary key)."""
    after: uuid.UUID | None = None
    picked = [_documents.c[name] for name in columns]
    while True:
        query = sa.select(*picked).order_by(_documents.c.id).limit(BATCH)
        if after is not None:
            query = query.where(_documents.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _rewrite(bind: sa.Connection, values: list[dict[str, Any]]) -> None:
    names = [key.removeprefix("b_") for key in values[0] if key != "b_id"]
    statement = (
        sa.update(_documents)
        .where(_documents.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(f"b_{name}") for name in names})
    )
    bind.execute(statement, values)


def _encrypt_existing(bind: sa.Connection) -> None:
    orphans = bind.execute(
        sa.delete(_documents).where(
            ~sa.exists(sa.select(1).where(_sendings.c.document_id == _documents.c.id))
        )
    ).rowcount
    total = int(bind.scalar(sa.select(sa.func.count()).select_from(_documents)) or 0)
    if orphans or total:
        context.config.attributes[COMPACT] = True
    if not total:
        return
    keyring = _keyring()
    key = keyring.current
    now = datetime.now(UTC)
    bind.execute(
        sa.insert(_keys),
        [{"id": k.kid, "check_value": k.check, "created_at": now} for k in keyring.keys],
    )
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("PRAGMA secure_delete=ON")  # freed cells are zeroed, not left
    meter = _Meter("encrypting", total)
    for rows in _batches(bind, ("id", "content_type", "body")):
        owners = {
            row.document_id: (row.practice_id, row.invoice_id)
            for row in bind.execute(
                sa.select(_sendings).where(_sendings.c.document_id.in_([r.id for r in rows]))
            )
        }
        values = []
        for row in rows:
            practice_id, invoice_id = owners[row.id]
            sealed = seal(
                key,
                document_id=row.id,
                practice_id=practice_id,
                invoice_id=invoice_id,
                content_type=row.content_type,
                plain=bytes(row.body),
            )
            values.append(
                {
                    "b_id": row.id,
                    "b_practice_id": practice_id,
                    "b_invoice_id": invoice_id,
                    "b_key_id": sealed.key_id,
                    "b_nonce": sealed.nonce,
                    "b_body": sealed.body,
                    "b_digest": sealed.digest,
                }
            )
        _rewrite(bind, values)
        meter.add(len(rows))


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "document_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_keys")),
    )
    op.execute("ALTER TABLE documents RENAME COLUMN sha256 TO digest")
    for column in _placeholders(bind.dialect.name).values():
        op.add_column("documents", column)
    _encrypt_existing(bind)
    if bind.dialect.name != "sqlite":
        for name in _NEW_COLUMNS:
            op.alter_column("documents", name, server_default=None)
    op.create_index("ix_documents_key_id", "documents", ["key_id", "id"], unique=False)


def _decrypt_existing(bind: sa.Connection) -> None:
    total = int(bind.scalar(sa.select(sa.func.count()).select_from(_documents)) or 0)
    if not total:
        return
    keyring = _keyring()
    meter = _Meter("decrypting", total)
    columns = ("id", "practice_id", "invoice_id", "content_type", "key_id", "nonce", "body")
    for rows in _batches(bind, columns):
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
            except DocumentUnreadable as exc:
                raise DocumentUnreadable(
                    f"cannot downgrade: document {row.id}: {exc.message}; delete it (or the "
                    "sendings' invoice) first"
                ) from None
            values.append(
                {"b_id": row.id, "b_body": plain, "b_digest": hashlib.sha256(plain).hexdigest()}
            )
        _rewrite(bind, values)
        meter.add(len(rows))


def downgrade() -> None:
    bind = op.get_bind()
    _decrypt_existing(bind)
    op.drop_index("ix_documents_key_id", table_name="documents")
    for name in reversed(_NEW_COLUMNS):
        # Plain ALTER TABLE on both engines (SQLite >= 3.35): no rebuild, see the docstring.
        op.execute(f"ALTER TABLE documents DROP COLUMN {name}")
    op.execute("ALTER TABLE documents RENAME COLUMN digest TO sha256")
    op.drop_table("document_keys")
