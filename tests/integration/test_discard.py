"""Discarding: giving up on an aborted sending for good, with a reason.  Both engines.

A discarded sending is `Discarded` (who, when and why on the row): worklists leave it out
(legacy aborted list, cause groups, the sendings list by default, overview counts,
notifications), a filter shows it, and only an admin's resend sends it again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from defusedxml import ElementTree

from invoice_outbox.admin.notifications import build_summary
from invoice_outbox.admin.resend_loop import run_job_once
from invoice_outbox.legacy.xml_objects import SERVICE_NS
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from invoice_outbox.web import overview_data
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
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
ABORTED = "/api/v1/billing/invoices/aborted"
SENDINGS = "/api/v1/billing/sendings"
CAUSES = "/api/v1/billing/causes"


async def discard(
    client: httpx.AsyncClient, headers: dict[str, str], sending_id: uuid.UUID, why: str = "dup"
) -> httpx.Response:
    response = await post(client, discard_url(sending_id), {"Reason": why}, headers)
    assert response.status_code == 200, response.text
    return response


async def test_discarding_an_aborted_sending_records_who_when_and_why(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(
        state,
        make(Status.ABORTED, cause="http-422", reason="MediSwitch refused it: unknown member"),
    )

    response = await discard(client, admin_headers, sending_id, "Patient paid cash")

    answer = response.json()
    assert answer["Sucess"] is True
    assert answer["ResponseMessage"] == "Sending discarded"
    data = answer["Data"]
    assert (data["PreviousStatus"], data["Status"]) == ("Aborted", "Discarded")
    assert data["Reason"] == "MediSwitch refused it: unknown member"  # the failure stays
    assert (data["DiscardedBy"], data["DiscardReason"]) == ("test-admin", "Patient paid cash")
    assert data["DiscardedAt"] == "2026-02-05T16:06:25Z"
    sending = (await sendings_by_id(state))[sending_id]
    assert (sending.status, sending.next_attempt_at) == ("Discarded", None)
    assert (sending.discarded_at, sending.discarded_by) == (NOW, "test-admin")
    assert sending.discard_reason == "Patient paid cash"
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
    await discard(client, admin_headers, given_up, "duplicate")

    job = await post(client, RESENDS, {"Cause": "http-503", "Reason": "outage over"}, admin_headers)
    data = job.json()["Data"]
    assert (data["Total"], data["DiscardedLeftOut"]) == (1, 1)
    assert any("discarded" in note for note in data["Notes"])
    await run_job_once(state, uuid.UUID(data["JobId"]))
    statuses = {k: s.status for k, s in (await sendings_by_id(state)).items()}
    assert statuses == {given_up: "Discarded", other: "Pending"}

    retried = await client.post(RETRY_ALL, headers=admin_headers)
    assert retried.status_code == 200
    assert retried.json()["Data"] == []
    assert (await sendings_by_id(state))[given_up].status == "Discarded"


async def test_worklists_leave_discarded_sendings_out_and_a_filter_shows_them(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    given_up, still_aborted, failed = await seed(
        state,
        make(Status.ABORTED, cause="http-400"),
        make(Status.ABORTED, cause="http-503"),
        make(Status.FAILED, cause="http-503"),
    )
    await discard(client, admin_headers, given_up, "duplicate")

    legacy = (await client.get(ABORTED, headers=admin_headers)).json()
    assert [row["Reason"] for row in legacy] == ["MediSwitch answered HTTP 503 Service Unavailable"]
    assert {row["Status"] for row in legacy} == {"Aborted"}
    assert (await client.get(f"{ABORTED}?limit=10", headers=admin_headers)).json() == legacy

    listed = (await client.get(SENDINGS, headers=admin_headers)).json()
    assert {item["SendingId"] for item in listed["Items"]} == {str(still_aborted), str(failed)}
    shown = (await client.get(f"{SENDINGS}?status=Discarded", headers=admin_headers)).json()
    [item] = shown["Items"]
    assert (item["SendingId"], item["Status"], item["Cause"]) == (
        str(given_up),
        "Discarded",
        "http-400",
    )
    both = (await client.get(f"{SENDINGS}?status=Aborted,Discarded", headers=admin_headers)).json()
    assert both["Total"] == 2

    causes = (await client.get(CAUSES, headers=admin_headers)).json()
    assert {g["Cause"]: g["Count"] for g in causes["Groups"]} == {"http-503": 2}
    assert causes["Total"] == 2
    refused = await client.get(f"{CAUSES}?status=Discarded", headers=admin_headers)
    assert refused.status_code == 400

    async with state.engine.connect() as connection:
        counts = await overview_data.status_counts(connection)
        top = await overview_data.top_causes(connection)
    assert (counts["Aborted"], counts["Failed"], counts["Discarded"]) == (1, 1, 1)
    assert [(c.cause, c.count) for c in top] == [("http-503", 2)]


async def test_notifications_do_not_count_a_sending_discarded_since_it_aborted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    both = [make(Status.ABORTED, cause="timeout") for _ in range(2)]
    for sending in both:
        sending.aborted_at = NOW - timedelta(minutes=30)
    given_up, _ = await seed(state, *both)
    await discard(client, admin_headers, given_up)

    async with state.engine.connect() as connection:
        summary = await build_summary(
            connection, since=NOW - timedelta(hours=1), until=NOW + timedelta(hours=1)
        )
    assert summary.aborted_count == 1


async def test_an_admin_resends_a_discarded_sending_by_naming_it_a_practice_user_may_not(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    await discard(client, practice_headers, sending_id, "we re-issued it")

    refused = await post(client, resend_url(sending_id), {"Reason": "oops"}, practice_headers)
    assert refused.status_code == 403
    assert "Only admins may resend a discarded sending" in refused.json()["Message"]
    assert (await sendings_by_id(state))[sending_id].status == "Discarded"

    response = await post(
        client, resend_url(sending_id), {"Reason": "it was not a duplicate"}, admin_headers
    )

    assert response.status_code == 200, response.text
    data = response.json()["Data"]
    assert (data["PreviousStatus"], data["Status"]) == ("Discarded", "Pending")
    sending = (await sendings_by_id(state))[sending_id]
    assert (sending.status, sending.next_attempt_at, sending.round_attempts) == ("Pending", NOW, 0)
    assert (sending.discarded_at, sending.discarded_by, sending.discard_reason) == (
        None,
        None,
        None,
    )
    [entry] = await audit_entries(state, "sendings.resend")
    assert entry.details["WasDiscarded"] is True
    assert entry.details["PreviousStatus"] == "Discarded"


async def test_a_named_bulk_resend_includes_discarded_ones(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    given_up, aborted = await seed(state, make(Status.ABORTED), make(Status.ABORTED))
    await discard(client, admin_headers, given_up)
    body = {"SendingIds": [str(given_up), str(aborted)], "Reason": "both, really"}

    job = await post(client, RESENDS, body, admin_headers)

    data = job.json()["Data"]
    assert (data["Total"], data["DiscardedLeftOut"]) == (2, 0)
    await run_job_once(state, uuid.UUID(data["JobId"]))
    assert {s.status for s in (await sendings_by_id(state)).values()} == {"Pending"}


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
    assert "already discarded (by test-admin: x)" in again.json()["Message"]
    after = await sendings_by_id(state)
    for sending_id in (failed, sent):
        assert (after[sending_id].status, after[sending_id].reason) == (
            before[sending_id].status,
            before[sending_id].reason,
        )
    assert after[aborted].discard_reason == "x"
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
    data = allowed.json()["Data"]
    assert (data["Status"], data["DiscardedBy"]) == ("Discarded", "test-practice")
    assert (await sendings_by_id(state))[others].status == "Aborted"


async def test_cancelling_the_invoice_cancels_a_discarded_sending(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    await discard(client, admin_headers, sending_id)
    invoice_id = (await sendings_by_id(state))[sending_id].invoice_id

    cancelled = await client.post(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}/cancel", headers=admin_headers
    )

    assert cancelled.status_code == 200, cancelled.text
    assert (await sendings_by_id(state))[sending_id].status == "Cancelled"


async def test_the_practice_view_says_it_was_given_up_on(
    client: httpx.AsyncClient, practice_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED, cause="http-400"))
    await discard(client, practice_headers, sending_id)

    page = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices?status=Discarded", headers=practice_headers
    )

    [item] = page.json()["Items"]
    assert item["Status"] == "Discarded"
    assert item["Explanation"] == (
        "The receiver could not accept the invoice as it is. Sending it was then stopped for good."
    )
    assert "ask your administrator to send it again" in item["NextStep"]


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
    fields = xml_fields(root)["Data"]
    assert (fields["Status"], fields["DiscardReason"]) == ("Discarded", "dup & old")
