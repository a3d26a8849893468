"""The domain's error tree is mapped once per front end: every kind raised in a route becomes
its status code in the API's legacy error shape (JSON and XML), and an HTML page under /admin.

The routes here are added to the real app (with every handler the API and the dashboard
install), and raise the errors bare: nothing in a route translates them.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable

import httpx
import markupsafe
import orjson
import pytest
from fastapi import FastAPI

from invoice_outbox.admin.resends import ResendInvalid, SendingNotFound
from invoice_outbox.auth.principal import DENIED, AccessDenied
from invoice_outbox.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidParameter,
    NotFound,
    OutboxError,
    Unavailable,
)
from invoice_outbox.sendings.intake import IntakeConflict, IntakeKeyMissing
from invoice_outbox.sendings.sealing import DocumentUnreadable

_ID = uuid.UUID("00000000-0000-0000-0000-000000000007")

#: (name, the error, status, the message a caller reads, extra headers)
CASES: list[tuple[str, Callable[[], OutboxError], int, str, dict[str, str]]] = [
    ("not-found", lambda: NotFound("No thing has the id 7."), 404, "No thing has the id 7.", {}),
    (
        "conflict",
        lambda: Conflict("The thing is busy; try again."),
        409,
        "The thing is busy; try again.",
        {},
    ),
    (
        "invalid",
        lambda: Invalid("Systems is empty"),
        400,
        "The request is invalid: Systems is empty.",
        {},
    ),
    (
        "invalid-parameter",
        lambda: InvalidParameter("from", "is not before to"),
        400,
        "The request is invalid: from is not before to.",
        {},
    ),
    ("forbidden", lambda: Forbidden("Not for you & yours."), 403, "Not for you & yours.", {}),
    (
        "unavailable",
        lambda: Unavailable("The database cannot be reached.", retry_after_seconds=7),
        503,
        "The database cannot be reached.",
        {"retry-after": "7"},
    ),
    # Specific classes map by the kind they derive from.
    ("access-denied", AccessDenied, 403, DENIED, {}),
    ("sending-not-found", lambda: SendingNotFound(_ID), 404, f"No sending has the id {_ID}.", {}),
    (
        "resend-invalid",
        lambda: ResendInvalid("give Cause, SendingIds or Filter"),
        400,
        "The request is invalid: give Cause, SendingIds or Filter.",
        {},
    ),
    ("intake-conflict", lambda: IntakeConflict("busy"), 409, "busy", {}),
    (
        "intake-key-missing",
        IntakeKeyMissing,
        503,
        "The invoice's stored document cannot be compared now (this server lacks its key); "
        "try again later.",
        {"retry-after": "30"},
    ),
    ("document-unreadable", lambda: DocumentUnreadable("altered"), 409, "altered", {}),
]
_ERRORS = {name: make for name, make, *_ in CASES}


@pytest.fixture
def engine_name() -> str:
    """The mapping does not depend on the database: SQLite only."""
    return "sqlite"


@pytest.fixture
def raising_app(app: FastAPI) -> FastAPI:
    """The app, with a route that raises the named error under /api and one under /admin."""

    async def raise_it(name: str) -> None:
        raise _ERRORS[name]() if name in _ERRORS else OutboxError("of no kind")

    app.add_api_route("/api/v1/test-errors/{name}", raise_it, methods=["GET"])
    app.add_api_route("/admin/test-errors/{name}", raise_it, methods=["GET"])
    return app


@pytest.mark.parametrize(("name", "status", "message", "headers"), [c[:1] + c[2:] for c in CASES])
async def test_a_domain_error_in_a_route_is_its_status_in_both_shapes(
    raising_app: FastAPI,
    client: httpx.AsyncClient,
    name: str,
    status: int,
    message: str,
    headers: dict[str, str],
) -> None:
    as_json = await client.get(f"/api/v1/test-errors/{name}")
    assert as_json.status_code == status
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.content == orjson.dumps({"Message": message})
    as_xml = await client.get(f"/api/v1/test-errors/{name}", headers={"Accept": "application/xml"})
    assert as_xml.status_code == status
    assert as_xml.headers["content-type"].startswith("application/xml")
    assert (
        as_xml.content
        == f"<Error><Message>{html.escape(message, quote=False)}</Message></Error>".encode()
    )
    for answer in (as_json, as_xml):
        for header, value in headers.items():
            assert answer.headers[header] == value
        if "retry-after" not in headers:
            assert "retry-after" not in answer.headers


@pytest.mark.parametrize(("name", "status", "message", "headers"), [c[:1] + c[2:] for c in CASES])
async def test_a_domain_error_in_a_page_is_an_html_page_of_its_status(
    raising_app: FastAPI,
    client: httpx.AsyncClient,
    name: str,
    status: int,
    message: str,
    headers: dict[str, str],
) -> None:
    page = await client.get(f"/admin/test-errors/{name}")
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert f"<p>{markupsafe.escape(message)}</p>" in page.text  # escaped as Jinja escapes
    assert '"Message"' not in page.text
    for header, value in headers.items():
        assert page.headers[header] == value


async def test_an_error_of_no_kind_is_a_500_in_both_front_ends(
    raising_app: FastAPI, client: httpx.AsyncClient
) -> None:
    api = await client.get("/api/v1/test-errors/bare")
    assert api.status_code == 500
    assert api.json() == {"Message": "An error has occurred."}
    page = await client.get("/admin/test-errors/bare")
    assert page.status_code == 500
    assert "Something went wrong" in page.text
    assert "of no kind" not in page.text
