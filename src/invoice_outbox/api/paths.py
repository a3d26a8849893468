"""ASP.NET routing rules for the API: paths match case-insensitively, a trailing slash is fine.

Implemented once, as a middleware that rewrites a request's path to the canonical spelling of
the route template it matches (literal segments from the template, parameters as sent), so
every route behaves like the ASP.NET original without each one knowing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

_PARAM = re.compile(r"^\{[^}]+\}$")


class _Template:
    def __init__(self, template: str) -> None:
        self.segments = template.strip("/").split("/")
        parts = ["[^/]+" if _PARAM.match(s) else re.escape(s) for s in self.segments]
        self.regex = re.compile("^/" + "/".join(f"({p})" for p in parts) + "/?$", re.IGNORECASE)
        self.literals = sum(1 for s in self.segments if not _PARAM.match(s))

    def canonical(self, path: str) -> str | None:
        match = self.regex.match(path)
        if match is None:
            return None
        sent = match.groups()
        return "/" + "/".join(
            value if _PARAM.match(segment) else segment
            for segment, value in zip(self.segments, sent, strict=True)
        )


class AspNetPaths:
    """Rewrite ``/API/V1/Billing/Invoices/Aborted/`` to ``/api/v1/billing/invoices/aborted``."""

    def __init__(self, app: ASGIApp, *, templates: Iterable[str]) -> None:
        self.app = app
        compiled = [_Template(t) for t in templates]
        # The most specific template wins where two could match.
        self.templates = sorted(compiled, key=lambda t: -t.literals)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for template in self.templates:
                canonical = template.canonical(path)
                if canonical is not None:
                    if canonical != path:
                        scope = dict(scope, path=canonical, raw_path=canonical.encode())
                    break
        await self.app(scope, receive, send)
