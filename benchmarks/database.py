"""The benchmark's own PostgreSQL database: created with a unique name, always dropped.

Also the few SQL steps between phases (promote more rows to Aborted, put them back, VACUUM and
ANALYZE) and the exact counts every phase checks before it measures anything.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from invoice_outbox.migrate import upgrade

ADMIN_CONNINFO = os.environ.get(
    "INVOICE_OUTBOX_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True, slots=True)
class BenchDatabase:
    """One database: its name and its three spellings (libpq, SQLAlchemy, psql arguments)."""

    name: str
    host: str
    port: str
    user: str

    @property
    def conninfo(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.name}"

    def psql_args(self) -> list[str]:
        return ["-X", "-q", "-h", self.host, "-p", self.port, "-U", self.user, "-d", self.name]


def _admin_execute(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_CONNINFO, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement)


@contextmanager
def bench_database() -> Iterator[BenchDatabase]:
    """Create ``bench_<random>``, migrate it to head, yield it, and drop it whatever happens."""
    base = psycopg.conninfo.conninfo_to_dict(ADMIN_CONNINFO)
    host = str(base.get("host", "127.0.0.1"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark against a non-loopback host {host!r}")
    database = BenchDatabase(
        name=f"bench_{secrets.token_hex(5)}",
        host=host,
        port=str(base.get("port", 5432)),
        user=str(base.get("user", "postgres")),
    )
    _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
    try:
        upgrade(database.sqlalchemy_url)
        yield database
    finally:
        _admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )


def _scalar(conninfo: str, query: str) -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(query).fetchone()
        assert row is not None
        return int(row[0])


def count_rows(conninfo: str, status: str | None = None) -> int:
    """Exact number of sendings (in `status`, when given)."""
    if status is None:
        return _scalar(conninfo, "SELECT count(*) FROM sendings")
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT count(*) FROM sendings WHERE status = %s", (status,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def vacuum_analyze(conninfo: str, *, vacuum: bool = True) -> None:
    """``VACUUM (ANALYZE)`` (or only ``ANALYZE``) the sendings table."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) sendings" if vacuum else "ANALYZE sendings")


PROMOTED_TABLE = "bench_promoted"


def promote_to_aborted(conninfo: str, extra: int) -> None:
    """Make `extra` more sendings Aborted, remembering each one's previous state.

    The rows are the first `extra` non-aborted ones by id (random UUIDs, so spread over the
    whole time range); their old status, reason, cause and next_attempt_at are kept in
    ``bench_promoted`` so that `demote_back` restores them exactly.
    """
    with psycopg.connect(conninfo) as connection:
        connection.execute(
            f"CREATE TABLE {PROMOTED_TABLE} AS "
            "SELECT id, status, reason, cause, next_attempt_at FROM sendings "
            "WHERE status <> 'Aborted' ORDER BY id LIMIT %s",
            (extra,),
        )
        connection.execute(
            f"UPDATE sendings s SET status = 'Aborted', next_attempt_at = NULL, "
            f"reason = coalesce(s.reason, 'Permanent error: the receiver refused the document'), "
            f"cause = coalesce(s.cause, 'rejected') FROM {PROMOTED_TABLE} p WHERE s.id = p.id"
        )


def demote_back(conninfo: str) -> None:
    """Undo `promote_to_aborted`: the promoted rows get their previous state back."""
    with psycopg.connect(conninfo) as connection:
        connection.execute(
            f"UPDATE sendings s SET status = p.status, reason = p.reason, cause = p.cause, "
            f"next_attempt_at = p.next_attempt_at FROM {PROMOTED_TABLE} p WHERE s.id = p.id"
        )
        connection.execute(f"DROP TABLE {PROMOTED_TABLE}")


_SNAPSHOT_SQL = """
SELECT 'index', indexname, indexdef FROM pg_indexes
 WHERE schemaname = current_schema() AND tablename = 'sendings'
UNION ALL
SELECT 'constraint ' || contype::text, conrelid::regclass::text || '.' || conname,
       pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid = 'sendings'::regclass OR confrelid = 'sendings'::regclass
ORDER BY 1, 2
"""


def schema_snapshot(conninfo: str) -> list[tuple[str, str, str]]:
    """Every index and constraint on (or referencing) ``sendings``, as the catalog defines it."""
    with psycopg.connect(conninfo) as connection:
        return [(str(a), str(b), str(c)) for a, b, c in connection.execute(_SNAPSHOT_SQL)]


#: Indexes kept during a bulk load: the one the measured query reads stays as production has it.
KEPT_INDEXES = ("ix_sendings_status_time",)


@contextmanager
def without_indexes(conninfo: str) -> Iterator[None]:
    """Drop the random-key indexes of ``sendings`` for a bulk load, then rebuild the same ones.

    PostgreSQL's own advice for populating a table: maintaining random-UUID B-trees row by row
    is what makes a 10-million-row COPY slow.  Dropped and rebuilt: the primary key, the unique
    constraints, the foreign key from ``attempts`` (it depends on the primary key) and
    ``ix_sendings_practice``.  Kept and maintained row by row, as in production: the partial
    indexes and ``ix_sendings_status_time``, the index the measured query reads.  Definitions
    are read from the catalog before and recreated from that text; the catalog is then compared
    with the snapshot taken before, so the measured schema is exactly the migrated one.
    """
    before = schema_snapshot(conninfo)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        keyed = connection.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
            "FROM pg_constraint WHERE (conrelid = 'sendings'::regclass AND contype IN ('p', 'u'))"
            " OR (confrelid = 'sendings'::regclass AND contype = 'f') "
            "ORDER BY contype = 'f' DESC, conname"
        ).fetchall()
        indexes = connection.execute(
            "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = 'sendings'::regclass "
            "AND x.indpred IS NULL AND c.relname <> ALL(%s) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid) ORDER BY c.relname",
            (list(KEPT_INDEXES),),
        ).fetchall()
        for table, name, _definition, _kind in keyed:  # foreign keys first
            connection.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )
        for name, _definition in indexes:
            connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    yield
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '512MB'")
        for table, name, definition, _kind in reversed(keyed):  # keys first, foreign keys last
            connection.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
                )
            )
        for _name, definition in indexes:
            connection.execute(sql.SQL(definition))
    after = schema_snapshot(conninfo)
    if after != before:
        raise RuntimeError(f"indexes differ after the bulk load:\n{before}\n{after}")
