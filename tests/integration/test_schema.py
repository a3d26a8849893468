"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.migrate import alembic_config, current_revision, head_revision, upgrade
from invoice_outbox.schema import target_metadata
from tests.databases import PostgresDatabases, SqliteDatabases


@pytest.fixture
def empty_database_url(
    engine_name: str, request: pytest.FixtureRequest, _sqlite_databases: SqliteDatabases
) -> str:
    if engine_name == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("_postgres_databases")
        return databases.empty()
    return _sqlite_databases.empty()


def _differences(url: str) -> list[object]:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, target_metadata))
    finally:
        engine.dispose()


def test_migrated_schema_matches_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert _differences(empty_database_url) == []


def test_migrations_go_down_and_up_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    command.downgrade(alembic_config(empty_database_url), "base")
    engine = make_sync_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_database_url)
    engine = make_sync_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()
