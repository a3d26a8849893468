"""The ``invoice-outbox`` command: serve, migrate, demo, token, user."""

from __future__ import annotations

import asyncio
import secrets
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from invoice_outbox.auth.keys import SigningKeyError, signing_key
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.auth.tokens import issue_token
from invoice_outbox.cli_keys import check_document_keys
from invoice_outbox.clock import SystemClock
from invoice_outbox.runtime import run_async
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="invoice-outbox: sends practices' invoices and explains what failed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage local users.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _register_subcommands() -> None:
    from invoice_outbox.cli_keys import keys_app
    from invoice_outbox.cli_systems import system_app

    app.add_typer(system_app, name="system")
    app.add_typer(keys_app, name="keys")


DEMO_CREDENTIALS_FILE = "demo-credentials.txt"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest version."""
    from invoice_outbox.db.migrate import upgrade
    from invoice_outbox.errors import OutboxError

    settings = _settings()
    try:
        upgrade(settings.database_url, progress=lambda line: typer.echo(line, err=True))
    except OutboxError as exc:
        raise _fail(exc.message, 2) from None
    typer.echo("database is at the newest schema version")


def _schema_is_current(settings: Settings) -> bool:
    from invoice_outbox.db.engine import make_sync_engine
    from invoice_outbox.db.migrate import current_revision, head_revision

    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return current_revision(connection) == head_revision()
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Deliver in this process too.")
    ] = True,
) -> None:
    """Run the HTTP service (API and admin pages), with a delivery worker unless --no-worker."""
    import uvicorn

    from invoice_outbox.app import create_app
    from invoice_outbox.logs import configure_logging

    settings = _settings()
    if not _schema_is_current(settings):
        raise _fail("the database schema is not current: run `invoice-outbox migrate` first")
    try:
        signing_key(settings)
    except SigningKeyError as exc:
        raise _fail(str(exc)) from None
    check_document_keys(settings)
    configure_logging()
    _print_banner(settings, host, port)
    uvicorn.run(
        create_app(settings, run_worker=worker, tune_gc=True),
        # Open requests get this long at shutdown; then the worker's own grace period runs.
        timeout_graceful_shutdown=10,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )


def _print_banner(settings: Settings, host: str, port: int) -> None:
    url = f"http://{host}:{port}"
    lines = [
        f"invoice-outbox is listening on {url}",
        f"  Dashboard:       {url}/admin/",
        f"  API docs:        {url}/docs",
        "  Get a token:     .venv/bin/invoice-outbox token --role admin",
        f"  or sign in:      curl -d 'grant_type=password&username=NAME&password=...' {url}/token",
        "  Then:            curl -H 'Authorization: Bearer TOKEN' "
        f"{url}/api/v1/billing/invoices/aborted",
    ]
    credentials = settings.var_dir / DEMO_CREDENTIALS_FILE
    if credentials.exists():
        lines.append(f"  Demo users:      {credentials.read_text().strip()}")
        lines.append(f"                   (name / password: sign in at {url}/admin/ or to /token)")
    print("\n".join(lines), file=sys.stderr, flush=True)


@app.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Deliveries at once (default INVOICE_OUTBOX_WORKER_CONCURRENCY).", min=1, max=512
        ),
    ] = None,
) -> None:
    """Run a delivery worker until SIGTERM/SIGINT (then finish or release what is in flight)."""
    from invoice_outbox.logs import configure_logging

    settings = _settings()
    if not _schema_is_current(settings):
        raise _fail("the database schema is not current: run `invoice-outbox migrate` first")
    check_document_keys(settings)
    configure_logging()
    run_async(_run_worker(settings, concurrency))


async def _run_worker(settings: Settings, concurrency: int | None) -> None:
    from invoice_outbox.db.engine import make_async_engine
    from invoice_outbox.runner import run_worker_until_signalled, worker_state

    engine = make_async_engine(settings.database_url)
    try:
        state = await worker_state(settings, engine)
        await run_worker_until_signalled(state, concurrency=concurrency)
    finally:
        await engine.dispose()


async def _load_demo(
    settings: Settings, if_empty: bool, sandbox_url: str, keyring: Keyring
) -> tuple[bool, list[uuid.UUID], str]:
    from invoice_outbox.auth.users import add_user
    from invoice_outbox.db.engine import make_async_engine, make_session_factory
    from invoice_outbox.demo import has_sendings, load_demo

    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            if if_empty and await has_sendings(session):
                return False, [], ""
            now = SystemClock().now()
            practices = await load_demo(session, now=now, sandbox_url=sandbox_url, keyring=keyring)
            password = secrets.token_urlsafe(12)
            admin_name = f"admin-{secrets.token_hex(2)}" if not if_empty else "admin"
            await add_user(session, name=admin_name, password=password, role=Role.ADMIN, now=now)
            await add_user(
                session,
                name=f"{admin_name}-practice",
                password=password,
                role=Role.PRACTICE,
                practices=[practices[0]],
                now=now,
            )
            await session.commit()
            return (
                True,
                practices,
                f"{admin_name} / {password} (admin), "
                f"{admin_name}-practice / {password} (practice {practices[0]})",
            )
    finally:
        await engine.dispose()


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only when there are no sendings yet.")
    ] = False,
    sandbox_url: Annotated[
        str,
        typer.Option(
            help="Where the demo systems deliver (serve with INVOICE_OUTBOX_SANDBOX=true)."
        ),
    ] = "http://127.0.0.1:8000/sandbox",
) -> None:
    """Load demo systems, practices, a delivery history, live invoices and demo users."""
    settings = _settings()
    keyring = check_document_keys(settings)
    loaded, practices, credentials = asyncio.run(
        _load_demo(settings, if_empty, sandbox_url, keyring)
    )
    if not loaded:
        typer.echo("demo data already present; nothing loaded")
        return
    path = settings.var_dir / DEMO_CREDENTIALS_FILE
    _write_private(path, credentials + "\n")
    typer.echo(f"demo data loaded for practices {', '.join(map(str, practices))}")
    typer.echo(f"demo users: {credentials} (kept in {path})")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text)


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="admin or practice")],
    practice: Annotated[
        list[uuid.UUID] | None, typer.Option(help="A practice id (repeatable).")
    ] = None,
    subject: Annotated[str, typer.Option(help="Name recorded as the caller.")] = "cli",
    hours: Annotated[float, typer.Option(help="Lifetime in hours.", min=0.01, max=720)] = 8,
) -> None:
    """Print a bearer token (for scripts and first steps)."""
    settings = _settings()
    practices = frozenset(practice or [])
    if role is Role.PRACTICE and not practices:
        raise _fail("a practice token needs at least one --practice GUID", 2)
    if role is Role.ADMIN and practices:
        raise _fail("an admin token sees every practice; drop --practice", 2)
    try:
        key = signing_key(settings)
    except SigningKeyError as exc:
        raise _fail(str(exc)) from None
    principal = Principal(subject=subject, role=role, practices=practices)
    typer.echo(
        issue_token(principal, key=key, now=SystemClock().now(), lifetime=timedelta(hours=hours))
    )


async def _add_user(
    settings: Settings, name: str, password: str, role: Role, practices: list[uuid.UUID]
) -> None:
    from invoice_outbox.admin import audit
    from invoice_outbox.auth.users import add_user
    from invoice_outbox.db.engine import make_async_engine, make_session_factory

    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            now = SystemClock().now()
            user = await add_user(
                session,
                name=name,
                password=password,
                role=role,
                practices=practices,
                now=now,
            )
            linked = sorted({str(p) for p in practices})
            await audit.record(
                session,
                principal=audit.CLI,
                action="user.add",
                reason="invoice-outbox user add",
                practice_id=uuid.UUID(linked[0]) if len(linked) == 1 else None,
                target=user.name,
                details={"Role": role.value, "Practices": linked},
                now=now,
            )
            await session.commit()
    finally:
        await engine.dispose()


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[Role, typer.Option(help="admin or practice")],
    practice: Annotated[
        list[uuid.UUID] | None, typer.Option(help="A practice id (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a local user who can sign in with POST /token."""
    from invoice_outbox.auth.users import UserError

    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        asyncio.run(_add_user(settings, name, password, role, practice or []))
    except UserError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(f"user {name!r} added ({role.value})")


_register_subcommands()
