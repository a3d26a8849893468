"""Composition root of `serve`: the FastAPI application, the state it owns, and (optionally) a
worker beside it.  Only entry points (the CLI, tests, benchmarks) import this module."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from invoice_outbox import __version__
from invoice_outbox.api import install_api
from invoice_outbox.auth.keys import signing_key
from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.db.engine import make_async_engine
from invoice_outbox.db.failures import as_unavailable
from invoice_outbox.runner import libpq_conninfo, run_background_worker
from invoice_outbox.runtime import tune_garbage_collector
from invoice_outbox.sendings.keyring import Keyring, load_keyring
from invoice_outbox.sendings.keystore import open_keyring
from invoice_outbox.settings import Settings, get_settings
from invoice_outbox.state import build_state
from invoice_outbox.systems.directory import listen_for_changes
from invoice_outbox.web import install_web

log = logging.getLogger(__name__)

DESCRIPTION = """
Sends medical practices' invoices to the external systems that must receive them, retries when
they fail, and tells administrators in plain words which invoices did not get through and why.

**Authentication:** `POST /token` (form-encoded password grant) or `invoice-outbox token`, then
`Authorization: Bearer <token>`. Roles: `admin` (every practice) and `practice` (their practices).

**Formats:** JSON or DataContract XML by the `Accept` header, as ASP.NET Web API negotiates.
Errors are `{"Message": "..."}` / `<Error><Message>...</Message></Error>`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_worker: bool = False,
    tune_gc: bool = False,
    keyring: Keyring | None = None,
) -> FastAPI:
    """Build the app.  Settings and clock are injected; the engine is created at start-up.

    Start-up fails (`DocumentKeyMissing`, `DocumentKeysInvalid`) when the document keys cannot
    open every stored document; `keyring` replaces the settings' keys (benchmarks, tests).

    `tune_gc` (the serve command) tunes the garbage collector once start-up is done.
    With `run_worker`, a delivery worker runs inside the process for the app's lifetime and
    is stopped gracefully (in-flight deliveries finish or are released) at shutdown.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(
            settings.database_url, peer_timeout_seconds=settings.database_peer_timeout_seconds
        )
        try:
            now = (clock or SystemClock()).now()
            keys = await open_keyring(engine, settings, now=now, keyring=keyring)
        except Exception as exc:
            if as_unavailable(exc) is None:
                await engine.dispose()
                raise
            # The database cannot be reached now: serve anyway (requests answer 503 until it
            # is back).  The keys are checked at the next start; until then a document under
            # a key this process lacks fails its delivery as retryable, never as lost.
            log.warning(
                "document keys not checked: the database is unavailable",
                extra={"action": "keys.check_deferred"},
            )
            keys = keyring or load_keyring(settings)
        except BaseException:
            await engine.dispose()
            raise
        conninfo = libpq_conninfo(settings.database_url)
        intake_engine = (
            None
            if conninfo is None
            else make_async_engine(
                settings.database_url,
                pool_size=settings.intake_concurrency,
                autocommit=True,
                peer_timeout_seconds=settings.database_peer_timeout_seconds,
            )
        )
        state = build_state(
            settings,
            engine,
            keyring=keys,
            signing_key=signing_key(settings),
            clock=clock,
            intake_engine=intake_engine,
        )
        app.state.runtime = state
        # PostgreSQL: other processes' changes of systems reach intake's cache at once.
        listener = (
            asyncio.create_task(listen_for_changes(conninfo, state.systems), name="systems")
            if conninfo is not None
            else None
        )
        try:
            async with run_background_worker(state, enabled=run_worker):
                if tune_gc:
                    tune_garbage_collector()
                yield
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            if intake_engine is not None:
                await intake_engine.dispose()
            await engine.dispose()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the installed package
    # (served under /static-offline-docs), never from a CDN, so they work without Internet.
    app = FastAPIOffline(
        title="invoice-outbox",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_api(app, settings)
    install_web(app)  # the dashboard's pages under /admin (HTML, not in the OpenAPI schema)
    return app
