"""Front end 1: the HTTP API (legacy routes of SPEC.md and the service's own), on FastAPI.

Routes parse HTTP, call the domain and write answers; the domain's errors propagate and are
mapped once (`errors.py`).  `install_api(app, settings)` adds the routers, the error mapping
and the request limits.  Routers by topic: the legacy routes (`legacy_lists`,
`legacy_commands`), finding failures (`listing_routes`), fixing them (`sending_routes`,
`resend_routes`, `audit_routes`), invoices, systems, sign-in (`token_route`) and probes.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from invoice_outbox.api import (
    acknowledgements,
    audit_routes,
    health,
    invoice_batch,
    invoices,
    legacy_commands,
    legacy_lists,
    listing_routes,
    metrics_route,
    practice_routes,
    rejection_routes,
    resend_routes,
    sandbox,
    sending_routes,
    systems,
    token_route,
)
from invoice_outbox.api.access_log import AccessLog
from invoice_outbox.api.allowed_methods import AllowedMethods
from invoice_outbox.api.boundary import BoundaryCharacters, HeaderSizeLimit
from invoice_outbox.api.errors import install_error_handlers
from invoice_outbox.api.limits import BodySizeLimit
from invoice_outbox.api.openapi import install_openapi
from invoice_outbox.api.paths import AspNetPaths
from invoice_outbox.settings import Settings


def install_api(app: FastAPI, settings: Settings) -> None:
    """Add the API to `app`: error mapping, request limits, routers, ASP.NET-style paths."""
    install_error_handlers(app)
    app.add_middleware(BoundaryCharacters)  # inside the body limit: it reads form bodies whole
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={"/billing/invoices/batch": settings.max_batch_body_bytes},
    )
    routers = [
        health.router,
        metrics_route.router,
        token_route.router,
        legacy_lists.router,
        legacy_commands.router,
        listing_routes.router,
        sending_routes.router,
        resend_routes.router,
        audit_routes.router,
        invoices.router,
        invoice_batch.router,
        systems.router,
        practice_routes.router,
        acknowledgements.router,
        rejection_routes.router,
    ]
    if settings.sandbox:
        routers.append(sandbox.router)
    for router in routers:
        app.include_router(router)
    api_paths = [
        route.path
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
    ]
    app.add_middleware(AllowedMethods)  # inside AspNetPaths: it sees the canonical path
    # Inside AspNetPaths: the access log sees the scope the router fills in (the route);
    # outside AllowedMethods, so its 405 and OPTIONS answers are logged too.
    app.add_middleware(AccessLog, log_sandbox=settings.log_sandbox_requests)
    app.add_middleware(AspNetPaths, templates=api_paths)
    app.add_middleware(HeaderSizeLimit)  # outermost: before anything looks at the request
    install_openapi(app)
