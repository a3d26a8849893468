"""Test databases: a migrated template per engine, and a fresh copy for every test.

PostgreSQL: each run creates its own uniquely named databases and drops them at the end, so it
assumes nothing left by an earlier run.  Where no PostgreSQL answers, its tests skip with a clear
message -- except under CI=true, where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from invoice_outbox.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "INVOICE_OUTBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def postgres_unavailable_reason() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return (
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({exc.__class__.__name__}: {exc})"
        )


def require_postgres() -> None:
    """Skip (or, in CI, fail) the calling test when PostgreSQL is unreachable."""
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires the PostgreSQL tests to run")
    pytest.skip(f"{reason}; set INVOICE_OUTBOX_TEST_POSTGRES to run them")


def _pg_url(database: str) -> str:
    base = psycopg.conninfo.conninfo_to_dict(POSTGRES_ADMIN_URL)
    user = base.get("user", "postgres")
    host = base.get("host", "127.0.0.1")
    port = base.get("port", 5432)
    return f"postgresql+psycopg://{user}@{host}:{port}/{database}"


def _admin_execute(statement: sql.Composed) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


class PostgresDatabases:
    """Creates databases named ``io_test_<run>_<n>`` and drops every one it created."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:10]
        self.created: list[str] = []
        self.template: str | None = None

    def _name(self) -> str:
        name = f"io_test_{self.run}_{len(self.created)}"
        self.created.append(name)
        return name

    def migrated_template(self) -> str:
        if self.template is None:
            name = self._name()
            _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            upgrade(_pg_url(name))
            self.template = name
        return self.template

    def empty(self) -> str:
        """A new database with no schema (for migration tests)."""
        name = self._name()
        _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return _pg_url(name)

    def fresh(self) -> str:
        """A new database with the migrated schema, copied from the template."""
        template = self.migrated_template()
        name = self._name()
        _admin_execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return _pg_url(name)

    def drop_all(self) -> None:
        for name in reversed(self.created):
            _admin_execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.created.clear()


class SqliteDatabases:
    """A migrated template file, copied for every test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template: Path | None = None
        self.count = 0

    def _path(self) -> Path:
        self.count += 1
        return self.root / f"db{self.count}.sqlite"

    def empty(self) -> str:
        return f"sqlite:///{self._path()}"

    def fresh(self) -> str:
        if self.template is None:
            self.template = self._path()
            upgrade(f"sqlite:///{self.template}")
        target = self._path()
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


@contextmanager
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()
