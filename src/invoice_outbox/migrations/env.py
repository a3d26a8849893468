"""Alembic environment: runs migrations on the engine the caller passes, or on the settings' URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from invoice_outbox.schema import target_metadata

config = context.config


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode alters a SQLite table by copying it and dropping the old one; with foreign
        # keys on, that drop cascades (rebuilding sendings would delete every attempt).  The
        # pragma only changes outside a transaction: before the migrations' one, on again after.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from invoice_outbox.db.engine import make_sync_engine

    engine = make_sync_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (SQL script) migrations are not supported; run `invoice-outbox migrate`"
    )
run_migrations_online()
