"""Database URLs: one configured URL, a sync form (migrations) and an async form (runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """The two spellings of one database."""

    sync_url: str
    async_url: str

    @property
    def is_sqlite(self) -> bool:
        return self.sync_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (as configured: a relative path starts at the current directory);
        None for PostgreSQL."""
        return Path(self.sync_url.removeprefix("sqlite:///")) if self.is_sqlite else None


def normalise_database_url(raw: str) -> DatabaseUrls:
    """Accept ``sqlite:///path`` or a PostgreSQL URL; raise ValueError with a hint otherwise."""
    try:
        url: URL = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected sqlite:///path/to/file.db or "
            "postgresql+psycopg://user@host:5432/dbname"
        ) from None
    driver = url.drivername
    if driver in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:":
            raise ValueError("SQLite needs a file path, e.g. sqlite:///./var/invoice-outbox.db")
        sync = url.set(drivername="sqlite")
        return DatabaseUrls(
            sync.render_as_string(hide_password=False),
            url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False),
        )
    if driver in _POSTGRES_DRIVERS:
        if not url.database:
            raise ValueError("PostgreSQL URL needs a database name, e.g. .../invoice_outbox")
        pg = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return DatabaseUrls(pg, pg)
    raise ValueError(f"unsupported database driver {driver!r}; use sqlite or postgresql+psycopg")
