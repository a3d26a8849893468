"""Input that cannot mean anything is refused at the boundary with 400, on both engines:
control characters (NUL above all: PostgreSQL cannot store it), nesting deeper than the limit,
dates and numbers outside what can be stored."""

from __future__ import annotations

import uuid

import httpx
import orjson

from invoice_outbox.api.bodies import MAX_DEPTH
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.web_support import ADMIN_NAME, ADMIN_PASSWORD, add_web_users, post_login, sign_in

ABORTED = "/api/v1/billing/invoices/aborted"
AUDIT = "/api/v1/billing/audit"
SENT_ON = "/api/v1/billing/invoices/sent/sentDate/"


def _refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    text = response.text
    for word in words:
        assert word in text, text


# Control characters -------------------------------------------------------------------------


URL_CONTROLS = (
    f"{ABORTED}?system=Medi%00Switch",
    f"{ABORTED}?q=%00",
    f"{ABORTED}?q=a%01b",
    f"{AUDIT}?actor=%00",
    f"{AUDIT}?target=x%00y",
    f"{AUDIT}?action=%1b",
    "/api/v1/billing/systems/Medi%00Switch",
    f"/api/v1/{PRACTICE_A}/billing/invoices/{uuid.uuid4()}%00",
    "/api/v1/billing/causes?q=%00",
)


async def test_control_characters_in_the_url_are_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for path in URL_CONTROLS:
        for accept in ("application/json", "application/xml"):
            response = await client.get(path, headers={**admin_headers, "Accept": accept})
            _refused(response, "control character")
            assert response.headers["content-type"].startswith(accept)


async def test_tab_and_newline_in_a_query_are_no_control_characters(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get(f"{ABORTED}?q=a%09b%0Ac", headers=admin_headers)
    assert response.status_code == 200


async def test_control_characters_in_json_strings_are_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for value in ("\u0000", "a\u0001b", "\u001f"):
        await _json_refused(client, admin_headers, value)


async def _json_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], value: str
) -> None:
    sending = uuid.uuid4()
    url = f"/api/v1/billing/sendings/{sending}/resend"
    response = await client.post(url, json={"Reason": value}, headers=admin_headers)
    _refused(response, "control character")
    body = {"Reason": "fine", "Filter": {"Q": value}}
    response = await client.post("/api/v1/billing/resends", json=body, headers=admin_headers)
    _refused(response, "control character")
    put = await client.put(
        "/api/v1/billing/systems/Good",
        json={"Channel": "Http", "Url": "http://127.0.0.1:9/x", "Practices": [], value: 1},
        headers=admin_headers,
    )
    _refused(put, "control character")


async def test_tabs_and_newlines_in_json_strings_are_accepted(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    url = f"/api/v1/billing/sendings/{uuid.uuid4()}/resend"
    response = await client.post(
        url, json={"Reason": "line 1\n\tline 2\r\n"}, headers=admin_headers
    )
    assert response.status_code == 404  # read and understood; there is no such sending


async def test_control_characters_in_xml_are_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for reference in ("&#0;", "&#1;", "&#x1F;", "\x01"):
        body = f"<ResendRequest><Reason>a{reference}b</Reason></ResendRequest>"
        response = await client.post(
            f"/api/v1/billing/sendings/{uuid.uuid4()}/resend",
            content=body,
            headers={**admin_headers, "Content-Type": "application/xml"},
        )
        _refused(response, "The request is invalid")


async def test_control_characters_in_the_token_form_are_400(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "password", "username": "alice\x00", "password": "x"}
    response = await client.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "control character" in response.json()["error_description"]
    multipart = await client.post("/token", files={"username": (None, "a\x00b")}, data=form)
    assert multipart.status_code == 400


async def test_control_characters_on_the_dashboard_are_an_html_400(
    client: httpx.AsyncClient, state: AppState
) -> None:
    async with state.sessions() as session:
        await add_web_users(session, now=NOW)
    response = await post_login(client, "alice\x00", ADMIN_PASSWORD)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "control character" in response.text
    await sign_in(client, ADMIN_NAME, ADMIN_PASSWORD)
    for page in ("/admin/audit?who=%00", "/admin/aborted?q=%00", "/admin/invoices/%00"):
        answer = await client.get(page)
        assert answer.status_code == 400, page
        assert answer.headers["content-type"].startswith("text/html")


# Nesting --------------------------------------------------------------------------------------


async def test_deeply_nested_json_documents_are_400_naming_the_limit(
    client: httpx.AsyncClient, admin_headers: dict[str, str], practice_headers: dict[str, str]
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/invoices")
    for levels in (MAX_DEPTH, 255, 1_000):
        await _nested_refused(client, practice_headers, levels)


async def _nested_refused(
    client: httpx.AsyncClient, practice_headers: dict[str, str], levels: int
) -> None:
    raw = b'{"InvoiceId":"%s","EncounterId":"%s","Document":%s}' % (
        str(uuid.uuid4()).encode(),
        str(uuid.uuid4()).encode(),
        b"[" * levels + b"1" + b"]" * levels,
    )
    response = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices",
        content=raw,
        headers={**practice_headers, "Content-Type": "application/json"},
    )
    _refused(response, f"deeper than {MAX_DEPTH} levels")


async def test_json_nested_to_the_limit_is_accepted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], practice_headers: dict[str, str]
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/invoices")
    document: object = 1
    for _ in range(MAX_DEPTH - 1):  # the body object itself is the first level
        document = [document]
    await submit(client, practice_headers, invoice_body(document=document))


async def test_deeply_nested_xml_is_400_naming_the_limit(
    client: httpx.AsyncClient, practice_headers: dict[str, str]
) -> None:
    for levels in (MAX_DEPTH - 1, 950, 5_000):  # + <Invoice> and <Document>
        deep = "<x>" * levels + "</x>" * levels
        body = (
            f"<Invoice><InvoiceId>{uuid.uuid4()}</InvoiceId><EncounterId>{uuid.uuid4()}"
            f"</EncounterId><Document>{deep}</Document></Invoice>"
        )
        response = await client.post(
            f"/api/v1/{PRACTICE_A}/billing/invoices",
            content=body,
            headers={**practice_headers, "Content-Type": "application/xml"},
        )
        _refused(response, f"deeper than {MAX_DEPTH} levels")


# Dates and numbers ------------------------------------------------------------------------


async def test_sent_date_at_the_ends_of_the_calendar_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for day in ("9999-12-31", "0001-01-01"):
        for query in ("", "?limit=5"):
            response = await client.get(SENT_ON + day + query, headers=admin_headers)
            _refused(response, "sentDate")


EXTREMES = (
    ("from=0001-01-01", "from"),
    ("to=9999-12-31", "to"),
    ("from=9999-12-31T23:59:59-14:00", "from"),
    ("to=0001-01-01T00:00:00%2B14:00", "to"),
    ("from=99999-01-01", "from"),
    ("to=0.5", "to"),
    ("to=1e308", "to"),
    ("limit=99999999999999999999999", "limit"),
    ("limit=-1", "limit"),
    ("limit=1e3", "limit"),
)


async def test_extreme_list_parameters_are_400_naming_them(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for query, name in EXTREMES:
        for path in (ABORTED, "/api/v1/billing/sendings", "/api/v1/billing/causes", AUDIT):
            if name == "limit" and path == "/api/v1/billing/causes":
                continue
            response = await client.get(f"{path}?{query}", headers=admin_headers)
            _refused(response, name)


async def test_a_practice_document_with_nesting_is_stored_as_given(
    client: httpx.AsyncClient, admin_headers: dict[str, str], practice_headers: dict[str, str]
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/invoices")
    document = {"Lines": [{"Code": "0190", "Notes": ["a\tb", {"c": ["d"]}]}]}
    response = await submit(client, practice_headers, invoice_body(document=document))
    assert orjson.loads(response.content)["Sucess"] is True
