"""What may cross the HTTP boundary at all, checked once for every route (API and dashboard).

- **Control characters.**  A NUL cannot be stored in PostgreSQL text (the query fails), and the
  other C0 controls cannot be written into XML 1.0; none of them means anything in a name, a
  reason or a filter.  `BoundaryCharacters` refuses them with 400 in the path, the query string
  and form bodies (URL-encoded or multipart) before any route runs; JSON and XML bodies are
  checked by their parser (`api/bodies.py`, with `control_character`).  Tab, CR and LF are
  allowed in bodies and queries (a reason may span lines).
- **Header size.**  The server refuses requests whose headers pass `MAX_HEADER_BYTES` itself,
  before buffering them whole (`invoice_outbox.http_server`, configured by `cli/serve.py`);
  `HeaderSizeLimit` answers 431 too for a header line over `MAX_HEADER_LINE_BYTES` or headers
  over `MAX_HEADER_BYTES` in total, whatever server runs the app.

Refusals use the shape of where they land: an HTML page under ``/admin``, the OAuth error shape
on ``/token``, the Web API shape (``{"Message": ...}`` or XML) everywhere else.
"""

from __future__ import annotations

import re
from html import escape
from typing import Final
from urllib.parse import parse_qsl, unquote_to_bytes

import orjson
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from invoice_outbox.api.errors import error_response_for_scope

#: C0 control characters other than tab, LF and CR.
_CONTROL_TEXT: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_BYTES: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

#: Longest header line a request may carry (`HeaderSizeLimit` answers 431 past it).
MAX_HEADER_LINE_BYTES: Final = 16 * 1024
#: Most header bytes (names and values of every header) a request may carry.
MAX_HEADER_BYTES: Final = 64 * 1024


def control_character(text: str) -> str | None:
    """The first forbidden control character in `text`, as ``U+0000``; None when there is none."""
    found = _CONTROL_TEXT.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _control_byte(data: bytes) -> str | None:
    found = _CONTROL_BYTES.search(data)
    return None if found is None else f"U+{found.group()[0]:04X}"


def control_message(where: str, character: str) -> str:
    return (
        f"The request is invalid: {where} contains the control character {character}; "
        "only tab, CR and LF are allowed."
    )


def refusal(scope: Scope, status: int, title: str, message: str) -> Response:
    """An error answer in the shape the request's path expects."""
    path = str(scope.get("path", ""))
    if path == "/admin" or path.startswith("/admin/"):
        page = (
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<main><h1>{escape(title)}</h1><p>{escape(message)}</p>"
            '<p><a href="/admin/">Back to the dashboard</a></p></main></html>'
        )
        return HTMLResponse(page, status_code=status)
    if path.rstrip("/").lower() == "/token":
        body = orjson.dumps({"error": "invalid_request", "error_description": message})
        return Response(
            body,
            status,
            media_type="application/json;charset=UTF-8",
            headers={"Cache-Control": "no-cache", "Pragma": "no-cache"},
        )
    return error_response_for_scope(scope, status, message)


class BoundaryCharacters:
    """Refuse control characters in the path, the query string and form bodies (400).

    Form bodies are read whole here (the body limit outside this middleware bounds them), checked,
    and handed on unchanged, so every form reader (the token route, the dashboard) sees only
    checked forms.  Multipart bodies are checked as raw bytes: no route takes file uploads.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._in_url(scope)
        if problem is not None:
            await refusal(scope, 400, "Please check the request", problem)(scope, receive, send)
            return
        content_type = Headers(scope=scope).get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() not in _FORM_TYPES:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            incoming = await receive()
            messages.append(incoming)
            if incoming["type"] != "http.request":
                break
            body += incoming.get("body", b"")
            if not incoming.get("more_body", False):
                break
        multipart = content_type.lower().startswith("multipart/")
        raw = bytes(body) if multipart else unquote_to_bytes(bytes(body).replace(b"+", b" "))
        character = _control_byte(raw)
        if character is not None:
            message = control_message("a form field", character)
            await refusal(scope, 400, "Please check the form", message)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _in_url(scope: Scope) -> str | None:
        character = control_character(str(scope.get("path", "")))
        if character is not None:
            return control_message("the path", character)
        query: bytes = scope.get("query_string", b"")
        character = _control_byte(unquote_to_bytes(query.replace(b"+", b" ")))
        if character is None:
            return None
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if control_character(name) is not None:
                return control_message("a query parameter's name", character)
            if control_character(value) is not None:
                safe = name if len(name) <= 50 else name[:50] + "..."
                return control_message(f"the query parameter {safe}", character)
        return control_message("the query string", character)


class HeaderSizeLimit:
    """431 when one header (name and value) is longer than `max_line` bytes, or all of them add
    up to more than `max_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_line: int = MAX_HEADER_LINE_BYTES,
        max_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_line = max_line
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sizes = [len(name) + len(value) for name, value in scope["headers"]]
            message = None
            if sizes and max(sizes) > self.max_line:
                message = f"A request header is longer than the limit of {self.max_line} bytes."
            elif sum(sizes) > self.max_bytes:
                message = (
                    f"The request headers are larger than the limit of {self.max_bytes} bytes."
                )
            if message is not None:
                answer = refusal(scope, 431, "Request headers too large", message)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
