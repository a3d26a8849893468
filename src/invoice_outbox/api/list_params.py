"""The list routes' query parameters and paging headers, on the HTTP side.

The parameters are read by the domain (`invoice_outbox.sendings.list_query.read_params`, which
every list of both front ends shares); here is what only HTTP has: their OpenAPI description
(`query_docs`) and the paging headers of a page (`paging_headers`, `PAGING_HEADERS_DOC`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request

from invoice_outbox.sendings.list_query import (
    CAUSE,
    CURSOR,
    DEFAULT_LIMIT,
    FROM,
    LIMIT,
    PRACTICE,
    SENDING_TYPE,
    STATUS,
    SYSTEM,
    TEXT,
    TO,
)
from invoice_outbox.sendings.listing import MAX_LIMIT, Page

_PARAM_DOCS: Final[Mapping[str, tuple[str, dict[str, Any]]]] = {
    PRACTICE: ("Only these practices (GUID; repeat or comma-separate).", {"type": "string"}),
    SYSTEM: (
        "Only sendings to these systems (exact name; repeat or comma-separate).",
        {"type": "string"},
    ),
    SENDING_TYPE: ("`Invoice` or `Cancellation` (repeat or comma-separate).", {"type": "string"}),
    STATUS: (
        "`Pending`, `Sending`, `Sent`, `Failed`, `Aborted`, `Cancelled`, `Discarded` (repeat "
        "or comma-separate). `GET api/v1/billing/sendings` without it lists every status but "
        "`Discarded`.",
        {"type": "string"},
    ),
    CAUSE: (
        "Cause groups: slugs such as `http-503`, `timeout`, `smtp-550`, `config` (see "
        "`GET api/v1/billing/causes`); `unknown` = failures recorded without a cause.",
        {"type": "string"},
    ),
    FROM: (
        "SendingTime from (inclusive): `yyyy-MM-dd` (the start of that day in the service's "
        "time zone) or an ISO date-time (no offset: the service's zone).",
        {"type": "string"},
    ),
    TO: (
        "SendingTime up to: `yyyy-MM-dd` includes that whole day; an ISO date-time is exclusive.",
        {"type": "string"},
    ),
    TEXT: ("Text the Reason contains (case-insensitive).", {"type": "string", "maxLength": 200}),
    LIMIT: (
        f"Page size, 1 to {MAX_LIMIT}. Giving `limit` or `cursor` pages the list "
        f"(default page: {DEFAULT_LIMIT}).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    ),
    CURSOR: (
        "The opaque cursor of the next page (`X-Next-Cursor` / `NextCursor`), used with "
        "the same filters as the first page.",
        {"type": "string"},
    ),
}


def query_docs(names: Sequence[str]) -> dict[str, Any]:
    """OpenAPI `parameters` for the named query parameters (read by `read_params`)."""
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": _PARAM_DOCS[name][0],
                "schema": _PARAM_DOCS[name][1],
            }
            for name in names
        ]
    }


PAGING_HEADERS_DOC: Final = {
    "X-Total-Count": {
        "description": "Rows in the whole list (fixed by its first page).",
        "schema": {"type": "integer"},
    },
    "X-Next-Cursor": {
        "description": "Cursor of the next page; absent on the last page.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page\'s URL: `<...>; rel="next"`.',
        "schema": {"type": "string"},
    },
}


def paging_headers(request: Request, page: Page) -> dict[str, str]:
    """``X-Total-Count``, and for a page with a successor ``X-Next-Cursor`` and ``Link``."""
    headers = {"X-Total-Count": str(page.total)}
    if page.next_cursor is not None:
        sent = [key for key, _ in request.query_params.multi_items() if key.lower() == CURSOR]
        url = request.url.remove_query_params(sent).include_query_params(cursor=page.next_cursor)
        headers["X-Next-Cursor"] = page.next_cursor
        headers["Link"] = f'<{url}>; rel="next"'
    return headers
