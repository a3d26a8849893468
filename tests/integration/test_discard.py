"""Discarding: giving up on an aborted sending for good, with a reason.  Both engines."""

from __future__ import annotations

import uuid

import httpx
from defusedxml import ElementTree

from invoice_outbox.admin.resend_loop import run_job_once
from invoice_outbox.legacy.xml_objects import SERVICE_NS
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_B
from tests.integration.test_resends import (
    RESENDS,
    audit_entries,
    discard_url,
    make,
    post,
    resend_url,
    seed,
    sendings_by_id,
    xml_fields,
)

RETRY_ALL = "/api/v1/billing/invoices/retryallfailed"


async def test_discarding_an_aborted_sending_records_who_and_why(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(
        state,
        make(Status.ABORTED, cause="http-422", reason="MediSwitch refused it: unknown member"),
    )

    response = await post(
        client, discard_url(sending_id), {"Reason": "Patient paid cash"}, admin_headers
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["Sucess"] is True
    assert answer["ResponseMessage"] == "Sending discarded"
    data = answer["Data"]
    assert data["Status"] == "Aborted"
    assert data["Reason"] == "Discarded by test-admin: Patient paid cash"
    sending = (await sendings_by_id(state))[sending_id]
    assert (sending.status, sending.next_attempt_at) == ("Aborted", None)
    assert sending.updated_at == NOW
    [entry] = await audit_entries(state, "sendings.discard")
    assert (entry.actor, entry.reason, entry.target) == (
        "test-admin",
        "Patient paid cash",
        str(sending_id),
    )
    assert entry.affected == [str(sending_id)]
    assert entry.details["PreviousReason"] == "MediSwitch refused it: unknown member"


async def test_a_discarded_sending_is_left_alone_by_bulk_resends_and_retry_all(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    given_up, other = await seed(
        state, make(Status.ABORTED, cause="http-503"), make(Status.ABORTED, cause="http-503")
    )
    await post(client, discard_url(given_up), {"Reason": "duplicate"}, admin_headers)

    job = await post(client, RESENDS, {"Cause": "http-503", "Reason": "outage over"}, admin_headers)
    data = job.json()["Data"]
    assert (data["Total"], data["DiscardedLeftOut"]) == (1, 1)
    assert any("discarded" in note for note in data["Notes"])
    await run_job_once(state, uuid.UUID(data["JobId"]))
    statuses = {k: s.status for k, s in (await sendings_by_id(state)).items()}
    assert statuses == {given_up: "Aborted", other: "Pending"}

    retried = await client.post(RETRY_ALL, headers=admin_headers)
    assert retried.status_code == 200
    assert retried.json()["Data"] == []
    assert (await sendings_by_id(state))[given_up].status == "Aborted"

    # Still listed as aborted, with the reason saying who gave up and why.
    listed = await client.get("/api/v1/billing/invoices/aborted", headers=admin_headers)
    [row] = listed.json()
    assert row["Reason"] == "Discarded by test-admin: duplicate"


async def test_a_discarded_sending_can_still_be_resent_by_naming_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    await post(client, discard_url(sending_id), {"Reason": "duplicate"}, admin_headers)

    response = await post(
        client, resend_url(sending_id), {"Reason": "it was not a duplicate"}, admin_headers
    )

    assert response.status_code == 200
    assert (await sendings_by_id(state))[sending_id].status == "Pending"
    [entry] = await audit_entries(state, "sendings.resend")
    assert entry.details["WasDiscarded"] is True


async def test_only_aborted_sendings_can_be_discarded_and_only_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    failed, sent, aborted = await seed(
        state, make(Status.FAILED), make(Status.SENT), make(Status.ABORTED)
    )
    before = await sendings_by_id(state)

    on_failed = await post(client, discard_url(failed), {"Reason": "x"}, admin_headers)
    on_sent = await post(client, discard_url(sent), {"Reason": "x"}, admin_headers)
    first = await post(client, discard_url(aborted), {"Reason": "x"}, admin_headers)
    again = await post(client, discard_url(aborted), {"Reason": "y"}, admin_headers)

    assert on_failed.status_code == on_sent.status_code == 409
    assert (
        "Only Aborted sendings can be discarded; this one is Failed"
        in (on_failed.json()["Message"])
    )
    assert first.status_code == 200
    assert again.status_code == 409
    assert "already discarded" in again.json()["Message"]
    after = await sendings_by_id(state)
    for sending_id in (failed, sent):
        assert (after[sending_id].status, after[sending_id].reason) == (
            before[sending_id].status,
            before[sending_id].reason,
        )
    assert len(await audit_entries(state, "sendings.discard")) == 1


async def test_discard_needs_a_reason_and_access_to_the_practice(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
) -> None:
    own, others = await seed(state, make(Status.ABORTED), make(Status.ABORTED, practice=PRACTICE_B))

    no_reason = await post(client, discard_url(own), {}, admin_headers)
    empty = await client.post(discard_url(own), headers=admin_headers)
    hidden = await post(client, discard_url(others), {"Reason": "x"}, practice_headers)
    allowed = await post(client, discard_url(own), {"Reason": "we re-issued it"}, practice_headers)

    assert no_reason.status_code == empty.status_code == 400
    assert "Reason" in no_reason.json()["Message"]
    assert hidden.status_code == 404
    assert allowed.status_code == 200
    assert allowed.json()["Data"]["Reason"] == "Discarded by test-practice: we re-issued it"
    assert (await sendings_by_id(state))[
        others
    ].reason == "MediSwitch answered HTTP 503 Service Unavailable"


async def test_discard_in_xml(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    response = await client.post(
        discard_url(sending_id),
        content="<DiscardRequest><Reason>dup &amp; old</Reason></DiscardRequest>",
        headers={**admin_headers, "Content-Type": "text/xml", "Accept": "text/xml"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{{{SERVICE_NS}}}RestApiResultOfSendingDiscard"
    assert xml_fields(root)["Data"]["Reason"] == "Discarded by test-admin: dup & old"
