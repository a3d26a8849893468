"""What every command shares: settings, the database, the async runner, and error mapping.

Errors are mapped here, once, for every command: the root group (`ErrorMappingGroup`) turns
the errors below into one line on stderr, ``error: <message>``, and an exit code; never a
traceback.  Anything else is a bug and keeps its traceback.

    raised                                                         exit code
    Invalid: the input is wrong (an argument, an option, a JSON       2  (usage)
      document, a password too short; document keys that are
      malformed, wrong or missing at start-up)
    SettingsError: an INVOICE_OUTBOX_* variable is invalid            2  (usage)
    Click's own usage errors (unknown option, missing argument)       2  (Click's message)
    every other OutboxError: NotFound (no database file, no state     1  (failure)
      directory), Conflict (schema not current), Forbidden,
      Unavailable (the database cannot be reached)
    SigningKeyError: the token signing key is unusable                1  (failure)

So 2 means "what you typed or configured is wrong", 1 means "the world is not as the command
needs it"; scripts may retry on 1, never on 2.

Commands open the database through `open_engine` / `open_session`, which never create
anything: a missing SQLite file, an unreachable or missing PostgreSQL database and a schema
that is not current each end the command with one line naming the database.  Only
``migrate`` creates a database (and ``serve`` / ``demo`` the state directory, ``var_dir``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.core import TyperGroup

from invoice_outbox import schema  # noqa: F401  (every table known before the first flush)
from invoice_outbox.auth.keys import SigningKeyError
from invoice_outbox.errors import Conflict, Invalid, NotFound, OutboxError, Unavailable
from invoice_outbox.runtime import run_async
from invoice_outbox.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

#: Exit code of a command that could not do its work (see the module docstring).
EXIT_FAILURE = 1
#: Exit code of wrong input or configuration (as Click's own usage errors).
EXIT_USAGE = 2

#: The errors the CLI reports in one line; any other exception is a bug.
REPORTED: tuple[type[Exception], ...] = (OutboxError, SettingsError, SigningKeyError)


def one_line(message: str) -> str:
    """`message` on one line: lines joined with "; " (after a line ending in ":" a space)."""
    out = ""
    for line in (part.strip() for part in message.splitlines()):
        if not line:
            continue
        out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def exit_code(error: Exception) -> int:
    """The exit code of one of the `REPORTED` errors."""
    return EXIT_USAGE if isinstance(error, Invalid | SettingsError) else EXIT_FAILURE


def report(error: Exception) -> typer.Exit:
    """Print ``error: <message>`` on stderr; return the Exit to raise."""
    message = error.message if isinstance(error, OutboxError) else str(error)
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(exit_code(error))


class ErrorMappingGroup(TyperGroup):
    """The root command group: maps the `REPORTED` errors of every command, once."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's private copy of click.Context
        try:
            return super().invoke(ctx)
        except REPORTED as error:
            raise report(error) from None


def settings() -> Settings:
    """The settings from the environment; a `SettingsError` is reported by the root group."""
    return load_settings()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on the project's event loop (`runtime.run_async`: uvloop
    where installed).  Every command that runs async code goes through here."""
    return run_async(main)


def shown_url(database_url: str) -> str:
    """The database URL as it may be printed: the password masked."""
    return make_url(database_url).render_as_string(hide_password=True)


def unreachable(database_url: str, error: DBAPIError) -> Unavailable:
    """The one-line error for a database that refused or failed the connection."""
    reason = (
        type(error).__name__ if error.orig is None else " ".join(one_line(str(error.orig)).split())
    )
    return Unavailable(f"cannot open the database {shown_url(database_url)}: {reason}")


def _where(path: Path, variable: str, value: str) -> str:
    """`path` made absolute, and where it came from when it was relative."""
    if path.is_absolute():
        return str(path)
    return f"{path.absolute()} ({variable}={value}, relative to the current directory)"


def require_database_file(settings: Settings) -> None:
    """For SQLite: NotFound unless the file exists (opening it would create an empty one)."""
    from invoice_outbox.db.urls import normalise_database_url

    path = normalise_database_url(settings.database_url).sqlite_path
    if path is not None and not path.is_file():
        where = _where(path, "INVOICE_OUTBOX_DATABASE_URL", settings.database_url)
        raise NotFound(
            f"no database at {where}: point INVOICE_OUTBOX_DATABASE_URL at the service's "
            "database, or create one with `invoice-outbox migrate`"
        )


def require_var_dir(settings: Settings, *, needed_for: str) -> None:
    """NotFound unless the state directory exists (only serve, demo and migrate create it)."""
    if not settings.var_dir.is_dir():
        where = _where(settings.var_dir, "INVOICE_OUTBOX_VAR_DIR", str(settings.var_dir))
        raise NotFound(
            f"no state directory at {where}; it holds {needed_for}: run this where the service "
            "runs, or point INVOICE_OUTBOX_VAR_DIR at the service's state directory"
        )


async def _require_current_schema(engine: AsyncEngine, database_url: str) -> None:
    from invoice_outbox.migrate import current_revision, head_revision

    try:
        async with engine.connect() as connection:
            revision = await connection.run_sync(current_revision)
    except DBAPIError as error:
        raise unreachable(database_url, error) from None
    if revision is None:
        raise Conflict(
            f"the database {shown_url(database_url)} has no schema yet: "
            "run `invoice-outbox migrate` first"
        )
    if revision != head_revision():
        raise Conflict("the database schema is not current: run `invoice-outbox migrate` first")


@contextlib.asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the configured database, disposed when the block ends.

    Checked before use, creating nothing: NotFound for a missing SQLite file, Unavailable when
    the database cannot be reached (or does not exist on the PostgreSQL server), Conflict when
    its schema is not the newest.  Errors inside the block are the caller's.
    """
    from invoice_outbox.db.engine import make_async_engine

    require_database_file(settings)
    engine = make_async_engine(
        settings.database_url, peer_timeout_seconds=settings.database_peer_timeout_seconds
    )
    try:
        await _require_current_schema(engine, settings.database_url)
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session on a checked engine (`open_engine`); the caller commits."""
    from invoice_outbox.db.engine import make_session_factory

    async with open_engine(settings) as engine, make_session_factory(engine)() as session:
        yield session


async def check_database(settings: Settings) -> None:
    """The checks of `open_engine`, for commands that open the database later themselves."""
    async with open_engine(settings):
        pass
