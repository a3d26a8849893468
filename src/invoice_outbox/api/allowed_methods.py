"""Which methods a path allows, answered once for every route (API and dashboard).

Starlette answers a method a path has no route for with the ``Allow`` of the *first* route
whose path matches, while a path often has several (``GET`` and ``PUT`` of a system are two
routes).  `AllowedMethods` looks at every route: a method none of them takes gets
``405 Method Not Allowed`` with ``Allow`` listing exactly the methods the path's routes take,
and ``OPTIONS`` gets ``204 No Content`` with that ``Allow`` (plus ``OPTIONS``).  Paths no route
matches go on to the usual 404.

A literal segment beats a parameter: of the routes whose path matches, only those with the
fewest path parameters count (``.../invoices/batch`` is the batch route's path, not an
invoice id that the invoice route would refuse).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from invoice_outbox.api.boundary import refusal

#: A route's path as a regex, its number of path parameters and its methods, or a mount
#: (which takes a whole subtree).
_Entry = tuple[re.Pattern[str], int, frozenset[str]] | Mount


def route_table(routes: Iterable[BaseRoute]) -> list[_Entry]:
    """Every route of the app (included routers flattened) with its effective path."""
    table: list[_Entry] = []
    for context in iter_route_contexts(list(routes)):
        if isinstance(context.original_route, Mount):
            table.append(context.original_route)
        elif context.path is not None and context.methods:
            regex, _, convertors = compile_path(context.path)
            table.append((regex, len(convertors), frozenset(context.methods)))
    return table


def allowed_methods(table: Sequence[_Entry], path: str, scope: Scope) -> set[str] | None:
    """The methods of the routes whose path matches `path` with the fewest parameters; None
    when none matches (or a mount, such as the static files, takes the path)."""
    found: set[str] | None = None
    fewest = 0
    for entry in table:
        if isinstance(entry, Mount):
            match, _ = entry.matches(scope)
            if match.value:
                return None
            continue
        regex, parameters, methods = entry
        if not regex.match(path):
            continue
        if found is None or parameters < fewest:
            found, fewest = set(methods), parameters
        elif parameters == fewest:
            found |= methods
    return found


class AllowedMethods:
    """405 with the path's real ``Allow`` for an unsupported method; 204 for ``OPTIONS``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.table: list[_Entry] | None = None  # built at the first request: routes are final

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "app" not in scope:
            await self.app(scope, receive, send)
            return
        if self.table is None:
            self.table = route_table(scope["app"].router.routes)
        methods = allowed_methods(self.table, scope["path"], scope)
        method = scope["method"]
        if methods is None or (method in methods and method != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        if method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": allow})
        else:
            message = f"The requested resource does not support http method '{method}'."
            response = refusal(scope, 405, "Not possible here", message)
            response.headers["Allow"] = allow
        await response(scope, receive, send)
