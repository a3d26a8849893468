"""The access log: one structured record per request, and a request id on every answer.

Fields (logger ``invoice_outbox.access``, action ``http.request``): ``method``, ``path``
(the route's template, e.g. ``/api/v1/{practiceId}/billing/invoices/{invoiceId}``, so ids
never fill the logs and lines group by route), ``status``, ``duration_ms``, ``request_id``.
The id is the caller's ``X-Request-ID`` when it is a short token, else a new one; it is sent
back in ``X-Request-ID`` and set on every log record written while the request is answered.

Quiet on purpose: the probes (``/health``, ``/health/ready``, ``/metrics``) are logged at
DEBUG, and the demo's sandbox receiver only with ``INVOICE_OUTBOX_LOG_SANDBOX_REQUESTS``.
A pure ASGI middleware: streamed answers are not buffered.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from invoice_outbox.logs import request_id

log = logging.getLogger("invoice_outbox.access")

QUIET_PATHS: Final = frozenset({"/health", "/health/ready", "/metrics"})
_TOKEN: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _template(scope: Scope) -> str:
    """The matched route's path template, or ``(unmatched)`` (never the raw path: it may
    carry ids, and unmatched ones are whatever a scanner sent)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    raw = str(scope.get("path", ""))
    if raw.startswith("/admin/static/"):
        return "/admin/static/{file}"
    return "(unmatched)"


class AccessLog:
    """Log each HTTP request once, when its answer has been sent (or failed)."""

    def __init__(self, app: ASGIApp, *, log_sandbox: bool = False) -> None:
        self.app = app
        self.log_sandbox = log_sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given is not None and _TOKEN.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._write(scope, status, started, rid)
            request_id.reset(token)

    def _write(self, scope: Scope, status: int, started: float, rid: str) -> None:
        path = str(scope.get("path", ""))
        if path.startswith("/sandbox/") and not self.log_sandbox:
            return
        level = logging.DEBUG if path in QUIET_PATHS and status < 500 else logging.INFO
        if status >= 500:
            level = logging.ERROR
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "action": "http.request",
            "method": scope.get("method", ""),
            "path": _template(scope),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "request_id": rid,
        }
        log.log(level, "%s %s %s", fields["method"], fields["path"], status, extra=fields)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:  # pragma: no cover -- latin-1 decodes every byte
                return None
    return None
