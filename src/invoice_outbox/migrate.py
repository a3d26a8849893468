"""Programmatic Alembic: upgrade to head, and ask whether a database is current.

Migrations that touch documents (0005 encrypts them, its downgrade decrypts them) need the
document keys: pass `keyring`, or they are loaded from the environment's settings when (and
only when) there are documents to convert.  `progress` receives their progress lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

if TYPE_CHECKING:
    from invoice_outbox.sendings.keyring import Keyring

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: config.attributes keys the document migrations read and write.
KEYRING = "document_keyring"
PROGRESS = "progress"
COMPACT = "compact_documents"


def alembic_config(
    database_url: str = "",
    *,
    keyring: Keyring | None = None,
    progress: Callable[[str], None] | None = None,
) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if keyring is not None:
        config.attributes[KEYRING] = keyring
    if progress is not None:
        config.attributes[PROGRESS] = progress
    return config


def upgrade(
    database_url: str,
    revision: str = "head",
    *,
    keyring: Keyring | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Apply every migration up to `revision`.

    When a migration rewrote documents (plain text encrypted), the old row versions are
    cleared from the database files afterwards (SQLite: VACUUM and a WAL checkpoint;
    PostgreSQL: VACUUM FULL documents), so the plain text does not linger in free pages.
    """
    config = alembic_config(database_url, keyring=keyring, progress=progress)
    command.upgrade(config, revision)
    if config.attributes.get(COMPACT):
        compact_documents(database_url)


def downgrade(
    database_url: str,
    revision: str,
    *,
    keyring: Keyring | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Go back to `revision` (decrypting documents needs their keys)."""
    command.downgrade(alembic_config(database_url, keyring=keyring, progress=progress), revision)


def compact_documents(database_url: str) -> None:
    """Rewrite the documents table's storage so no dead row version survives in the files."""
    from invoice_outbox.db.engine import make_sync_engine

    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("VACUUM")
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                connection.exec_driver_sql("VACUUM FULL documents")
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None when never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()
