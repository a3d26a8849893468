"""``invoice-outbox migrate | serve | worker``: the schema and the long-running processes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from invoice_outbox.auth.keys import signing_key
from invoice_outbox.cli import common, keys
from invoice_outbox.cli.demo_cmd import DEMO_CREDENTIALS_FILE
from invoice_outbox.settings import Settings


def migrate() -> None:
    """Create or upgrade the database schema to the newest version."""
    from invoice_outbox.migrate import upgrade

    settings = common.settings()
    try:
        # Progress lines of long migrations (encrypting documents) go to stderr.
        upgrade(settings.database_url, progress=lambda line: typer.echo(line, err=True))
    except DBAPIError as error:
        raise common.unreachable(settings.database_url, error) from None
    typer.echo("database is at the newest schema version")


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

    settings = common.settings()
    # The database's checks, then the document keys must open every stored document.
    common.run(keys.check_document_keys(settings, may_create_var_dir=True))
    signing_key(settings)  # creates the key under var_dir on first start
    configure_logging(fmt=settings.log_format)
    print_banner(settings, host, port)
    uvicorn.run(
        create_app(settings, run_worker=worker, tune_gc=True),
        # Open requests get this long at shutdown; then the worker's own grace period runs.
        timeout_graceful_shutdown=10,
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # invoice_outbox.api.access_log writes structured access lines
        proxy_headers=False,
        server_header=False,
        # httptools with a bound on request headers: 431 past 64 KiB, before they are buffered.
        http="invoice_outbox.http_server:BoundedHttpToolsProtocol",
    )


def print_banner(settings: Settings, host: str, port: int) -> None:
    """Tell a new user, on stderr, where the dashboard is and how to get in."""
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


def worker(
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            "--concurrency",
            help="Deliveries in flight at once over all systems (default "
            "INVOICE_OUTBOX_WORKER_MAX_IN_FLIGHT, 256); each system's MaxInFlight also applies. "
            "--concurrency is its older name.",
            min=1,
            max=4096,
        ),
    ] = None,
) -> None:
    """Run a delivery worker until SIGTERM/SIGINT (then finish or release what is in flight)."""
    common.run(_run_worker(common.settings(), max_in_flight))


async def _run_worker(settings: Settings, concurrency: int | None) -> None:
    from invoice_outbox.logs import configure_logging
    from invoice_outbox.runner import run_worker_until_signalled, worker_state

    async with common.open_engine(settings) as engine:
        keys.require_key_file_dir(settings)
        keyring = await keys.start_up_keyring(engine, settings)
        configure_logging(fmt=settings.log_format)
        state = await worker_state(settings, engine, keyring=keyring)
        await run_worker_until_signalled(state, concurrency=concurrency)
