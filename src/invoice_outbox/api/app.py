"""The FastAPI application: routers, error mapping, limits, and the runtime it owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from invoice_outbox import __version__
from invoice_outbox.api import (
    admin_routes,
    health,
    invoices,
    legacy_commands,
    legacy_lists,
    listing_routes,
    metrics_route,
    sandbox,
    systems,
    token_route,
)
from invoice_outbox.api.errors import install_error_handlers
from invoice_outbox.api.limits import BodySizeLimit
from invoice_outbox.api.paths import AspNetPaths
from invoice_outbox.api.state import AppState
from invoice_outbox.auth.keys import signing_key
from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.db.engine import make_async_engine, make_session_factory
from invoice_outbox.metrics import Metrics
from invoice_outbox.runtime import tune_garbage_collector
from invoice_outbox.settings import Settings, get_settings
from invoice_outbox.web import install_web
from invoice_outbox.worker.runner import run_background_worker
from invoice_outbox.worker.waker import Waker

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
) -> FastAPI:
    """Build the app.  Settings and clock are injected; the engine is created at start-up.

    `tune_gc` (the serve command) tunes the garbage collector once start-up is done.
    With `run_worker`, a delivery worker runs inside the process for the app's lifetime and
    is stopped gracefully (in-flight deliveries finish or are released) at shutdown.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(settings.database_url)
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            signing_key=signing_key(settings),
            clock=clock or SystemClock(),
            waker=Waker(),
            metrics=Metrics(),
        )
        app.state.runtime = state
        async with run_background_worker(state, enabled=run_worker):
            if tune_gc:
                tune_garbage_collector()
            yield
        await engine.dispose()

    app = FastAPI(
        title="invoice-outbox",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    routers = [
        health.router,
        metrics_route.router,
        token_route.router,
        legacy_lists.router,
        legacy_commands.router,
        listing_routes.router,
        admin_routes.router,
        invoices.router,
        systems.router,
    ]
    if settings.sandbox:
        routers.append(sandbox.router)
    for router in routers:
        app.include_router(router)
    install_web(app)  # the dashboard's pages under /admin (HTML, not in the OpenAPI schema)
    api_paths = [
        route.path
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
    ]
    app.add_middleware(AspNetPaths, templates=api_paths)
    return app
