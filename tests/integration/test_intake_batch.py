"""Batch submission: POST api/v1/{practiceId}/billing/invoices/batch, on both engines.

One result per item, in order; one bad item never refuses the others; an item is never half
applied; the same rules as a single submission (idempotency, corrections, conflicts).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import pytest
from defusedxml import ElementTree
from sqlalchemy import event

from invoice_outbox.auth.principal import Role
from invoice_outbox.sendings.documents import Document
from invoice_outbox.sendings.intake import Outcome as IntakeOutcome
from invoice_outbox.sendings.intake import Submission, submit_invoices
from invoice_outbox.sendings.models import Sending
from invoice_outbox.state import AppState
from invoice_outbox.systems.directory import SystemsDirectory
from tests.conftest import PRACTICE_A, PRACTICE_B, fixed_keyring, make_token
from tests.pipeline_helpers import (
    all_sendings,
    configure_system,
    count,
    invoice_body,
    opened,
    running_worker,
    submit,
    until,
)
from tests.receivers import HttpReceiver

BATCH = f"/api/v1/{PRACTICE_A}/billing/invoices/batch"
SERVICE_NS = "{http://schemas.datacontract.org/2004/07/InvoiceOutbox.Api}"


@pytest.fixture
async def systems(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> tuple[str, str]:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "m")
    await configure_system(
        client,
        admin_headers,
        "Healthbridge",
        receiver.url + "h",
        practices=[PRACTICE_A, PRACTICE_B],
    )
    return "Healthbridge", "MediSwitch"


async def post_batch(
    client: httpx.AsyncClient, headers: dict[str, str], items: Any, *, expect: int = 200
) -> httpx.Response:
    response = await client.post(
        BATCH,
        content=orjson.dumps(items),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == expect, response.text
    return response


def outcomes(response: httpx.Response) -> list[tuple[str | None, str]]:
    return [(r["InvoiceId"], r["Outcome"]) for r in response.json()["Data"]]


async def test_each_item_gets_its_own_outcome_in_order(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    systems: tuple[str, str],
    state: AppState,
) -> None:
    submitted = invoice_body(document={"v": 1})
    to_correct = invoice_body(document={"v": 1})
    theirs = invoice_body(document={"practice": "B"}, systems=["Healthbridge"])
    await submit(client, practice_headers, submitted)
    await submit(client, practice_headers, to_correct)
    b_headers = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    await submit(client, b_headers, theirs, practice=PRACTICE_B)
    before = {s.id: s.idempotency_key for s in await all_sendings(state)}
    new = invoice_body(document={"new": True})
    unknown = invoice_body(systems=["NoSuchSwitch"])
    items: list[Any] = [
        new,
        submitted,
        {**to_correct, "Document": {"v": 2}},
        {**theirs, "Document": {"practice": "A"}},
        unknown,
        {"InvoiceId": "not-a-guid", "EncounterId": str(uuid.uuid4()), "Document": {}},
        "not an invoice",
    ]

    response = await post_batch(client, practice_headers, items)

    body = response.json()
    assert body["Sucess"] is True
    assert body["ResponseCode"] == 200
    assert outcomes(response) == [
        (new["InvoiceId"], "Accepted"),
        (submitted["InvoiceId"], "Duplicate"),
        (to_correct["InvoiceId"], "Corrected"),
        (theirs["InvoiceId"], "Conflict"),
        (unknown["InvoiceId"], "Conflict"),  # as the single route: 409
        ("not-a-guid", "Invalid"),
        (None, "Invalid"),
    ]
    reasons = [r["Reason"] for r in body["Data"]]
    assert "another practice" in reasons[3]
    assert "NoSuchSwitch" in reasons[4]
    assert "InvoiceId" in reasons[5]
    after = {s.id: s for s in await all_sendings(state)}
    # Only the new invoice added sendings; only the corrected one changed its keys.
    assert len(after) == len(before) + 2
    changed = {i for i in before if after[i].idempotency_key != before[i]}
    assert {after[i].invoice_id for i in changed} == {uuid.UUID(to_correct["InvoiceId"])}
    # The three first documents, the new invoice's, and v2 (v1 stays until retention purges it).
    assert await count(state, Document) == 5
    assert not any(s.invoice_id == uuid.UUID(unknown["InvoiceId"]) for s in after.values())


async def test_a_corrected_item_is_delivered_as_corrected(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    invoice = invoice_body(document={"Total": "100.00"})
    await post_batch(client, practice_headers, [invoice])
    response = await post_batch(client, practice_headers, [{**invoice, "Document": {"Total": "1"}}])
    assert outcomes(response) == [(invoice["InvoiceId"], "Corrected")]
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [request] = receiver.requests
    assert request.body == b'{"Total":"1"}'
    [sending] = await all_sendings(state)
    assert request.header("Idempotency-Key") == sending.idempotency_key


async def test_the_same_invoice_twice_in_one_batch_is_applied_in_order(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    systems: tuple[str, str],
    state: AppState,
) -> None:
    first = invoice_body(document={"v": 1})
    response = await post_batch(
        client, practice_headers, [first, first, {**first, "Document": {"v": 2}}]
    )
    assert [o for _, o in outcomes(response)] == ["Accepted", "Duplicate", "Corrected"]
    stored = await all_sendings(state)
    assert len(stored) == len(systems)
    async with state.sessions() as session:
        bodies = {
            opened(state.keyring, await session.get_one(Document, s.document_id))
            for s in stored
            if s.document_id
        }
    assert bodies == {b'{"v":2}'}


async def test_a_correction_of_a_delivered_invoice_changes_nothing_of_that_item(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    admin_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    """All or nothing per item: with one system Sent and one Pending, the correction is a
    Conflict and the Pending sending keeps its document too."""
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    invoice = invoice_body(document={"v": 1}, systems=["MediSwitch"])
    await submit(client, practice_headers, invoice)
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    await configure_system(client, admin_headers, "Healthbridge", receiver.url)
    both = {**invoice, "Systems": ["MediSwitch", "Healthbridge"]}
    await submit(client, practice_headers, both)  # the same document, one more system
    before = {s.system: (s.document_id, s.idempotency_key) for s in await all_sendings(state)}
    documents = await count(state, Document)

    response = await post_batch(client, practice_headers, [{**both, "Document": {"v": 2}}])

    [(_, outcome)] = outcomes(response)
    assert outcome == "Conflict"
    assert "already delivered to MediSwitch" in response.json()["Data"][0]["Reason"]
    after = {s.system: (s.document_id, s.idempotency_key) for s in await all_sendings(state)}
    assert after == before
    assert await count(state, Document) == documents


async def test_xml_batch_is_answered_in_xml(
    client: httpx.AsyncClient, practice_headers: dict[str, str], systems: tuple[str, str]
) -> None:
    invoice, encounter = uuid.uuid4(), uuid.uuid4()
    xml = (
        "<ArrayOfInvoice>"
        f"<Invoice><InvoiceId>{invoice}</InvoiceId><EncounterId>{encounter}</EncounterId>"
        "<Document><Claim><Total>1.00</Total></Claim></Document></Invoice>"
        "<Invoice><InvoiceId>x</InvoiceId></Invoice>"
        "</ArrayOfInvoice>"
    )
    response = await client.post(
        BATCH,
        content=xml.encode(),
        headers={
            **practice_headers,
            "Content-Type": "application/xml",
            "Accept": "application/xml",
        },
    )
    assert response.status_code == 200, response.text
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{SERVICE_NS}RestApiResultOfArrayOfInvoiceSubmissionResult"
    results = root.findall(f"{SERVICE_NS}Data/{SERVICE_NS}InvoiceSubmissionResult")
    assert [r.findtext(f"{SERVICE_NS}Outcome") for r in results] == ["Accepted", "Invalid"]
    assert results[0].findtext(f"{SERVICE_NS}InvoiceId") == str(invoice)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"InvoiceId": "x"}', "array"),
        (b"[", "JSON"),
        (orjson.dumps([{}] * 1001), "at most 1000"),
    ],
)
async def test_a_body_that_is_not_a_list_of_invoices_is_a_400(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    systems: tuple[str, str],
    state: AppState,
    content: bytes,
    problem: str,
) -> None:
    response = await client.post(
        BATCH, content=content, headers={**practice_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert problem in response.json()["Message"]
    assert await count(state, Sending) == 0


async def test_another_practices_user_may_not_submit_a_batch(
    client: httpx.AsyncClient, systems: tuple[str, str], state: AppState
) -> None:
    b_headers = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    response = await post_batch(client, b_headers, [invoice_body()], expect=403)
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert await count(state, Sending) == 0
    assert (await post_batch(client, {}, [invoice_body()], expect=401)).status_code == 401


async def test_the_batch_route_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/v1/{practiceId}/billing/invoices/batch"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    assert body["maxItems"] == 1000
    assert "Admins, or users of that practice" in operation["description"]


async def test_a_new_invoice_costs_one_statement_on_postgresql(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    systems: tuple[str, str],
    state: AppState,
    engine_name: str,
) -> None:
    """The hot path is a fixed, small number of statements: on PostgreSQL one round trip for a
    new invoice to known systems (and for a resubmission), whether single or batch."""
    if engine_name == "postgres":
        await until(lambda: state.systems.listening)  # else it checks the systems' version
    await submit(client, practice_headers, invoice_body())  # the systems are cached now
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engines = [e.sync_engine for e in (state.engine, state.intake_engine) if e is not None]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        repeat = invoice_body()
        await submit(client, practice_headers, repeat)
        single = list(statements)
        statements.clear()
        await post_batch(client, practice_headers, [invoice_body() for _ in range(50)])
        batch = list(statements)
        statements.clear()
        await submit(client, practice_headers, repeat)
        again = list(statements)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    if engine_name == "postgres":
        assert len(single) == len(batch) == len(again) == 1, (single, batch, again)
    else:
        # SQLite: the systems version, the read, the documents, the sendings, and whether
        # their systems are held (held work wakes no worker).
        assert len(single) <= 5, single
        assert len(batch) <= 5, batch
        assert len(again) <= 2, again


async def test_an_item_stored_under_a_key_this_server_lacks_is_a_conflict_alone(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    systems: tuple[str, str],
    state: AppState,
) -> None:
    """Another process sealed the invoice under a key not yet here: whether the item is the
    same document cannot be told, so it is refused (try again) and never replaced; the other
    items of the batch are applied."""
    newer = fixed_keyring("k9:" + base64.b64encode(b"\x09" * 32).decode())
    sealed_elsewhere = invoice_body(document={"Total": "1.00"})
    submission = Submission(
        practice_id=PRACTICE_A,
        invoice_id=uuid.UUID(sealed_elsewhere["InvoiceId"]),
        encounter_id=uuid.UUID(sealed_elsewhere["EncounterId"]),
        document=orjson.dumps(sealed_elsewhere["Document"]),
        content_type="application/json",
    )
    [taken] = await submit_invoices(
        state.engine, SystemsDirectory(), [submission], now=state.clock.now(), keyring=newer
    )
    assert taken.outcome is IntakeOutcome.ACCEPTED
    before = {s.id: (s.document_id, s.idempotency_key) for s in await all_sendings(state)}
    new = invoice_body()

    response = await post_batch(
        client, practice_headers, [{**sealed_elsewhere, "Document": {"Total": "2.00"}}, new]
    )

    assert outcomes(response) == [
        (sealed_elsewhere["InvoiceId"], "Conflict"),
        (new["InvoiceId"], "Accepted"),
    ]
    assert "lacks its key" in response.json()["Data"][0]["Reason"]
    after = {s.id: (s.document_id, s.idempotency_key) for s in await all_sendings(state)}
    assert {k: after[k] for k in before} == before  # nothing of it replaced
