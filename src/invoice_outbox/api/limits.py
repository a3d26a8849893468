"""A request-body size limit, enforced before any route reads the body."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from fastapi import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from invoice_outbox.api.errors import error_response_for_scope


class BodyTooLarge(HTTPException):
    """Raised inside `receive` when a streamed body passes the limit.

    An HTTPException, so body parsers pass it through instead of calling it a parse error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


def _too_large(scope: Scope, message: str) -> Response:
    """The API's error shape, or a plain page for the dashboard's forms (under /admin)."""
    path = str(scope.get("path", ""))
    if path == "/admin" or path.startswith("/admin/"):
        page = (
            '<!doctype html><html lang="en"><meta charset="utf-8"><title>Too large</title>'
            f"<main><h1>Too large</h1><p>{escape(message)}</p>"
            '<p><a href="/admin/">Back to the dashboard</a></p></main></html>'
        )
        return HTMLResponse(page, status_code=413)
    return error_response_for_scope(scope, 413, message)


class BodySizeLimit:
    """Refuse bodies over `max_bytes` with 413, whether announced by Content-Length or not.

    `larger` gives paths ending in a suffix (compared in lower case, after the canonical
    paths middleware) a limit of their own: a batch of invoices is larger than one invoice.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = {suffix.lower(): limit for suffix, limit in (larger or {}).items()}

    def _limit(self, path: str) -> int:
        lowered = path.lower().rstrip("/")
        for suffix, limit in self.larger.items():
            if lowered.endswith(suffix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(str(scope.get("path", "")))
        message = f"The request body is larger than the limit of {max_bytes} bytes."
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await _too_large(scope, message)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(message)
            return incoming

        started = False

        async def tracking_send(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(scope, message)(scope, receive, send)
