"""Resending: one sending, and bulk jobs by cause, filter or list (dry run, background batches).

Both engines.  Jobs are run to the end with `run_job_once` (or batch by batch with
`run_batch`), so no test waits on time; the clock only moves by `clock.advance`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy import func, insert, select, update

from invoice_outbox.admin import resend_loop
from invoice_outbox.admin.models import AuditEntry, ResendJob
from invoice_outbox.admin.resend_loop import LeaseLost, claim_job, run_batch, run_job_once
from invoice_outbox.auth.principal import Role
from invoice_outbox.clock import FrozenClock
from invoice_outbox.legacy.xml_objects import SERVICE_NS
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests import factories
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B, make_token
from tests.pipeline_helpers import (
    all_sendings,
    configure_system,
    count,
    invoice_body,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver, Reply

RESENDS = "/api/v1/billing/resends"
EARLIER = NOW - timedelta(hours=1)


def resend_url(sending_id: object) -> str:
    return f"/api/v1/billing/sendings/{sending_id}/resend"


def discard_url(sending_id: object) -> str:
    return f"/api/v1/billing/sendings/{sending_id}/discard"


def make(
    status: Status,
    *,
    cause: str | None = None,
    system: str = "MediSwitch",
    practice: uuid.UUID = PRACTICE_A,
    reason: str | None = None,
    updated: datetime = EARLIER,
) -> Sending:
    """A sending as the worker would have left it (attempts spent, cause and reason set)."""
    attempts = {Status.PENDING: 0, Status.SENT: 1, Status.CANCELLED: 0}.get(status, 8)
    overrides: dict[str, Any] = {"cause": cause, "updated_at": updated}
    if status is Status.SENT:
        overrides["sent_at"] = updated
    if status is Status.FAILED:
        overrides["next_attempt_at"] = NOW + timedelta(hours=2)
    if status is Status.PENDING:
        overrides["next_attempt_at"] = NOW
    if status in (Status.FAILED, Status.ABORTED) and reason is None:
        reason = f"{system} answered HTTP 503 Service Unavailable"
    return factories.sending(
        status=status,
        when=updated - timedelta(minutes=5),
        practice_id=practice,
        system=system,
        reason=reason,
        attempts=attempts,
        overrides=overrides,
    )


async def seed(state: AppState, *sendings: Sending) -> list[uuid.UUID]:
    async with state.sessions() as session:
        session.add_all(sendings)
        await session.commit()
    return [s.id for s in sendings]


async def seed_many(state: AppState, number: int, *, status: Status, cause: str) -> None:
    """`number` sendings in one multi-row INSERT per 1,000 (fast enough for thousands)."""
    rows = []
    for _ in range(number):
        s = make(status, cause=cause)
        rows.append({c.key: getattr(s, c.key) for c in Sending.__table__.columns})
    async with state.sessions() as session:
        for start in range(0, number, 1000):
            await session.execute(insert(Sending), rows[start : start + 1000])
        await session.commit()


async def sendings_by_id(state: AppState) -> dict[uuid.UUID, Sending]:
    return {s.id: s for s in await all_sendings(state)}


async def job_of(state: AppState, job_id: str | uuid.UUID) -> ResendJob:
    async with state.sessions() as session:
        job = await session.get(ResendJob, uuid.UUID(str(job_id)))
        assert job is not None
        return job


async def audit_entries(state: AppState, action: str | None = None) -> list[AuditEntry]:
    async with state.sessions() as session:
        statement = select(AuditEntry).order_by(AuditEntry.id)
        if action is not None:
            statement = statement.where(AuditEntry.action == action)
        return list((await session.scalars(statement)).all())


async def post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await client.post(url, json=body, headers=headers)


def xml_fields(element: Any) -> dict[str, Any]:
    """An XML object as {local name: text | dict | None} (lists are not needed here)."""
    result: dict[str, Any] = {}
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        if child.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true":
            result[name] = None
        elif len(child):
            result[name] = xml_fields(child)
        else:
            result[name] = child.text or ""
    return result


# One sending ------------------------------------------------------------------------------


async def test_resend_of_a_failed_sending_queues_it_and_a_worker_delivers_it(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    receiver: HttpReceiver,
    state: AppState,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    receiver.respond_with(Reply(503))
    await submit(client, practice_headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [failed] = await all_sendings(state)
    assert failed.status == "Failed"
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > NOW
    receiver.respond_with(Reply(200))
    before = await count(state, Sending)

    response = await post(
        client, resend_url(failed.id), {"Reason": "switch is back"}, admin_headers
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == ["Sucess", "ResponseCode", "ResponseMessage", "Data", "Links"]
    assert answer["Sucess"] is True
    assert answer["ResponseCode"] == 200
    assert answer["Links"] == []
    data = answer["Data"]
    assert data["SendingId"] == str(failed.id)
    assert (data["PreviousStatus"], data["Status"]) == ("Failed", "Pending")
    [queued] = await all_sendings(state)
    assert queued.status == "Pending"
    assert queued.next_attempt_at == NOW
    assert queued.round_attempts == 0
    assert queued.attempts == 1
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [sent] = await all_sendings(state)
    assert sent.status == "Sent"
    assert await count(state, Sending) == before
    # Same idempotency key both times: a receiver can drop the repeat.
    keys = {r.header("Idempotency-Key") for r in receiver.requests}
    assert keys == {failed.idempotency_key}
    [entry] = await audit_entries(state, "sendings.resend")
    assert (entry.actor, entry.actor_role, entry.reason) == (
        "test-admin",
        "admin",
        "switch is back",
    )
    assert entry.affected == [str(failed.id)]
    assert entry.affected_count == 1
    assert entry.details["Forced"] is False
    assert entry.practice_id == PRACTICE_A


async def test_a_sent_sending_is_resent_only_when_forced_and_the_audit_says_so(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sent_id] = await seed(state, make(Status.SENT))

    refused = await post(client, resend_url(sent_id), {"Reason": "again"}, admin_headers)

    assert refused.status_code == 409
    assert "already delivered" in refused.json()["Message"]
    assert '"Force": true' in refused.json()["Message"]
    assert (await sendings_by_id(state))[sent_id].status == "Sent"
    assert await audit_entries(state) == []

    forced = await post(
        client, resend_url(sent_id), {"Reason": "receiver lost it", "Force": True}, admin_headers
    )

    assert forced.status_code == 200, forced.text
    assert "forced" in forced.json()["ResponseMessage"]
    assert forced.json()["Data"]["PreviousStatus"] == "Sent"
    assert (await sendings_by_id(state))[sent_id].status == "Pending"
    [entry] = await audit_entries(state, "sendings.resend")
    assert entry.details["Forced"] is True
    assert entry.details["PreviousStatus"] == "Sent"
    assert entry.reason == "receiver lost it"


@pytest.mark.parametrize(
    ("status", "words"),
    [(Status.PENDING, "already queued"), (Status.CANCELLED, "cancelled")],
)
async def test_resend_of_what_cannot_be_resent_is_409_with_the_reason(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    status: Status,
    words: str,
) -> None:
    [sending_id] = await seed(state, make(status))
    response = await post(
        client, resend_url(sending_id), {"Reason": "x", "Force": True}, admin_headers
    )
    assert response.status_code == 409
    assert words in response.json()["Message"]
    assert (await sendings_by_id(state))[sending_id].status == status.value


async def test_practice_users_resend_their_own_failed_sendings_only(
    client: httpx.AsyncClient,
    practice_headers: dict[str, str],
    state: AppState,
) -> None:
    own, others, delivered = await seed(
        state, make(Status.ABORTED), make(Status.ABORTED, practice=PRACTICE_B), make(Status.SENT)
    )

    ok = await post(client, resend_url(own), {"Reason": "fixed the address"}, practice_headers)
    hidden = await post(client, resend_url(others), {"Reason": "x"}, practice_headers)
    unknown = uuid.uuid4()
    missing = await post(client, resend_url(unknown), {"Reason": "x"}, practice_headers)
    forcing = await post(
        client, resend_url(delivered), {"Reason": "x", "Force": True}, practice_headers
    )

    assert ok.status_code == 200, ok.text
    # Another practice's sending looks exactly like one that does not exist.
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["Message"] == f"No sending has the id {others}."
    assert missing.json()["Message"] == f"No sending has the id {unknown}."
    assert forcing.status_code == 403
    statuses = {k: s.status for k, s in (await sendings_by_id(state)).items()}
    assert statuses == {own: "Pending", others: "Aborted", delivered: "Sent"}
    [entry] = await audit_entries(state)
    assert (entry.actor, entry.actor_role, entry.practice_id) == (
        "test-practice",
        "practice",
        PRACTICE_A,
    )


async def test_resend_in_xml(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    body = "<ResendRequest><Reason>back up</Reason><Force>false</Force></ResendRequest>"

    response = await client.post(
        resend_url(sending_id),
        content=body,
        headers={**admin_headers, "Content-Type": "application/xml", "Accept": "application/xml"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{{{SERVICE_NS}}}RestApiResultOfSendingResend"
    names = [child.tag.rsplit("}", 1)[-1] for child in root]
    assert names == ["Data", "Links", "ResponseCode", "ResponseMessage", "Sucess"]
    fields = xml_fields(root)
    assert fields["Sucess"] == "true"
    assert fields["ResponseCode"] == "200"
    assert fields["Data"]["Status"] == "Pending"
    assert fields["Data"]["SendingId"] == str(sending_id)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "Reason"),
        ({"Reason": ""}, "Reason"),
        ({"Reason": "x", "Force": "maybe"}, "Force"),
        ({"Reason": "x", "Extra": 1}, "Extra"),
    ],
)
async def test_bad_resend_bodies_are_400(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    body: dict[str, Any],
    words: str,
) -> None:
    [sending_id] = await seed(state, make(Status.ABORTED))
    response = await post(client, resend_url(sending_id), body, admin_headers)
    assert response.status_code == 400
    assert words in response.json()["Message"]
    assert (await sendings_by_id(state))[sending_id].status == "Aborted"


async def test_a_sending_id_that_is_not_a_guid_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await post(client, resend_url("not-a-guid"), {"Reason": "x"}, admin_headers)
    assert response.status_code == 400
    assert "sendingId" in response.json()["Message"]


# Bulk: previews -----------------------------------------------------------------------------


async def _cause_groups(state: AppState) -> dict[str, uuid.UUID]:
    """A realistic mix: the http-503 group has 3 Aborted and 2 Failed (two systems)."""
    named = {
        "a1": make(Status.ABORTED, cause="http-503"),
        "a2": make(Status.ABORTED, cause="http-503"),
        "a3": make(Status.ABORTED, cause="http-503", system="PracticeLedger"),
        "f1": make(Status.FAILED, cause="http-503"),
        "f2": make(Status.FAILED, cause="http-503", practice=PRACTICE_B),
        "other": make(Status.ABORTED, cause="http-422"),
        "sent": make(Status.SENT),
        "queued": make(Status.PENDING, cause="http-503"),
        "cancelled": make(Status.CANCELLED, cause="http-503"),
    }
    await seed(state, *named.values())
    return {name: s.id for name, s in named.items()}


async def test_a_dry_run_by_cause_says_what_it_would_do_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    ids = await _cause_groups(state)
    before = {k: (s.status, s.updated_at) for k, s in (await sendings_by_id(state)).items()}

    response = await post(
        client,
        RESENDS,
        {"Cause": "http-503", "DryRun": True, "Reason": "outage over"},
        admin_headers,
    )

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["ResponseCode"] == 202
    assert "would be" in answer["ResponseMessage"]
    data = answer["Data"]
    assert (data["Status"], data["DryRun"], data["Total"], data["Done"]) == ("Done", True, 5, 0)
    assert data["ByStatus"] == [{"Status": "Aborted", "Count": 3}, {"Status": "Failed", "Count": 2}]
    assert data["BySystem"] == [
        {"System": "MediSwitch", "Count": 4},
        {"System": "PracticeLedger", "Count": 1},
    ]
    expected = sorted(str(ids[k]) for k in ("a1", "a2", "a3", "f1", "f2"))
    assert sorted(data["Sample"]) == expected
    assert data["FinishedAt"] is not None
    assert data["CreatedBy"] == "test-admin"
    after = {k: (s.status, s.updated_at) for k, s in (await sendings_by_id(state)).items()}
    assert after == before
    assert await audit_entries(state) == []  # a dry run changes nothing, so it is not audited
    read = await client.get(f"{RESENDS}/{data['JobId']}", headers=admin_headers)
    assert read.status_code == 200
    assert read.json()["Data"]["Total"] == 5
    assert read.json()["Data"]["Status"] == "Done"


async def test_a_dry_run_samples_at_most_20_ids(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await seed_many(state, 45, status=Status.ABORTED, cause="timeout")
    response = await post(
        client, RESENDS, {"Cause": "timeout", "DryRun": True, "Reason": "x"}, admin_headers
    )
    data = response.json()["Data"]
    assert data["Total"] == 45
    assert len(data["Sample"]) == 20
    assert data["Sample"] == sorted(data["Sample"])


async def test_sent_sendings_are_left_out_unless_forced_and_the_answer_says_so(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await seed(
        state,
        make(Status.SENT, system="Mailbox"),
        make(Status.SENT, system="Mailbox"),
        make(Status.ABORTED, system="Mailbox"),
        make(Status.ABORTED),
    )
    body = {"Filter": {"System": "Mailbox"}, "DryRun": True, "Reason": "mailbox lost mail"}

    plain = (await post(client, RESENDS, body, admin_headers)).json()["Data"]
    forced = (await post(client, RESENDS, {**body, "Force": True}, admin_headers)).json()["Data"]

    assert (plain["Total"], plain["SentLeftOut"], plain["SentIncluded"]) == (1, 2, 0)
    assert any(
        "2 sending(s) already Sent would be left out" in n and "Force" in n for n in plain["Notes"]
    )
    assert (forced["Total"], forced["SentLeftOut"], forced["SentIncluded"]) == (3, 0, 2)
    assert any("Force is true" in n for n in forced["Notes"])


async def test_an_unknown_cause_matches_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await _cause_groups(state)
    response = await post(
        client, RESENDS, {"Cause": "no-such-cause", "DryRun": False, "Reason": "x"}, admin_headers
    )
    assert response.status_code == 202
    data = response.json()["Data"]
    assert (data["Total"], data["Status"]) == (0, "Running")
    await run_job_once(state, uuid.UUID(data["JobId"]))
    job = await job_of(state, data["JobId"])
    assert (job.status, job.total, job.done, job.skipped) == ("Done", 0, 0, 0)


# Bulk: jobs -------------------------------------------------------------------------------


async def test_a_job_by_cause_requeues_exactly_the_matching_sendings(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    ids = await _cause_groups(state)
    before = await sendings_by_id(state)

    response = await post(
        client,
        RESENDS,
        {"Cause": "http-503", "DryRun": False, "Reason": "outage over"},
        admin_headers,
    )

    assert response.status_code == 202, response.text
    data = response.json()["Data"]
    job_id = data["JobId"]
    assert (data["Status"], data["Total"], data["Done"], data["DryRun"]) == ("Running", 5, 0, False)
    progress = (await client.get(f"{RESENDS}/{job_id}", headers=admin_headers)).json()["Data"]
    assert (progress["Status"], progress["Total"], progress["Done"]) == ("Running", 5, 0)
    assert {s.status for s in (await sendings_by_id(state)).values()} == {
        s.status for s in before.values()
    }

    await run_job_once(state, uuid.UUID(job_id))

    progress = (await client.get(f"{RESENDS}/{job_id}", headers=admin_headers)).json()["Data"]
    assert (
        progress["Status"],
        progress["Total"],
        progress["Done"],
        progress["Skipped"],
        progress["Failed"],
    ) == ("Done", 5, 5, 0, 0)
    assert progress["FinishedAt"] is not None
    after = await sendings_by_id(state)
    resent = {ids[k] for k in ("a1", "a2", "a3", "f1", "f2")}
    for sending_id, sending in after.items():
        if sending_id in resent:
            assert sending.status == "Pending"
            assert sending.next_attempt_at == NOW
            assert sending.round_attempts == 0
            assert sending.attempts == before[sending_id].attempts
        else:
            assert (sending.status, sending.updated_at) == (
                before[sending_id].status,
                before[sending_id].updated_at,
            )
    assert len(after) == len(before)  # requeued in place: never a new (duplicate) sending
    [start] = await audit_entries(state, "resend_job.start")
    [batch] = await audit_entries(state, "resend_job.batch")
    [finish] = await audit_entries(state, "resend_job.finish")
    assert start.target == batch.target == finish.target == job_id
    assert sorted(batch.affected) == sorted(str(i) for i in resent)
    assert (finish.affected_count, finish.details["Status"]) == (5, "Done")
    assert {start.actor, batch.actor, finish.actor} == {"test-admin"}
    assert {start.reason, batch.reason, finish.reason} == {"outage over"}


async def test_a_job_skips_what_changed_since_the_preview(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState, clock: FrozenClock
) -> None:
    ids = await seed(state, *(make(Status.ABORTED, cause="http-503") for _ in range(5)))
    preview = await post(
        client,
        RESENDS,
        {"Cause": "http-503", "DryRun": True, "Reason": "look first"},
        admin_headers,
    )
    preview_id = preview.json()["Data"]["JobId"]
    clock.advance(timedelta(minutes=10))
    changed_at = clock.now()
    async with state.sessions() as session:
        # One was resent and delivered meanwhile; one failed again (a newer failure).
        await session.execute(
            update(Sending)
            .where(Sending.id == ids[0])
            .values(status="Sent", cause=None, sent_at=changed_at, updated_at=changed_at)
        )
        await session.execute(
            update(Sending)
            .where(Sending.id == ids[1])
            .values(reason="timed out", updated_at=changed_at)
        )
        await session.commit()
    clock.advance(timedelta(minutes=1))

    response = await post(
        client, RESENDS, {"PreviewJobId": preview_id, "Reason": "go"}, admin_headers
    )

    assert response.status_code == 202, response.text
    data = response.json()["Data"]
    assert data["Total"] == 5
    assert data["Selection"]["Cause"] == "http-503"
    assert data["SnapshotAt"] == preview.json()["Data"]["SnapshotAt"]
    await run_job_once(state, uuid.UUID(data["JobId"]))
    job = await job_of(state, data["JobId"])
    assert (job.status, job.total, job.done, job.skipped, job.failed) == ("Done", 5, 3, 2, 0)
    statuses = {k: s.status for k, s in (await sendings_by_id(state)).items()}
    assert statuses == {
        ids[0]: "Sent",
        ids[1]: "Aborted",
        ids[2]: "Pending",
        ids[3]: "Pending",
        ids[4]: "Pending",
    }


async def test_preview_job_id_must_name_a_dry_run_with_the_same_selection(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await _cause_groups(state)
    preview = await post(
        client, RESENDS, {"Cause": "http-503", "DryRun": True, "Reason": "x"}, admin_headers
    )
    preview_id = preview.json()["Data"]["JobId"]
    real = await post(client, RESENDS, {"Cause": "http-503", "Reason": "x"}, admin_headers)

    other = await post(
        client,
        RESENDS,
        {"PreviewJobId": preview_id, "Cause": "http-422", "Reason": "x"},
        admin_headers,
    )
    forced = await post(
        client, RESENDS, {"PreviewJobId": preview_id, "Force": True, "Reason": "x"}, admin_headers
    )
    not_dry = await post(
        client,
        RESENDS,
        {"PreviewJobId": real.json()["Data"]["JobId"], "Reason": "x"},
        admin_headers,
    )
    unknown = await post(
        client, RESENDS, {"PreviewJobId": str(uuid.uuid4()), "Reason": "x"}, admin_headers
    )
    same = await post(
        client,
        RESENDS,
        {"PreviewJobId": preview_id, "Cause": "http-503", "Reason": "x"},
        admin_headers,
    )

    assert other.status_code == forced.status_code == 400
    assert "differs from the dry run" in other.json()["Message"]
    assert not_dry.status_code == unknown.status_code == 404
    assert same.status_code == 202


async def test_a_job_over_5000_sendings_moves_its_cursor_batch_by_batch(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    await seed_many(state, 5000, status=Status.ABORTED, cause="timeout")
    await seed_many(state, 7, status=Status.ABORTED, cause="http-503")
    response = await post(client, RESENDS, {"Cause": "timeout", "Reason": "x"}, admin_headers)
    job_id = uuid.UUID(response.json()["Data"]["JobId"])
    assert await claim_job(state, owner="test-runner", job_id=job_id) == job_id

    cursors: list[str] = []
    done: list[int] = []
    while (looked_at := await run_batch(state, job_id, owner="test-runner")) is not None:
        assert looked_at == resend_loop.BATCH_SIZE
        job = await job_of(state, job_id)
        assert job.cursor is not None
        cursors.append(job.cursor["After"])
        done.append(job.done)

    assert len(cursors) == 5000 // resend_loop.BATCH_SIZE
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)
    assert done == list(range(500, 5001, 500))
    job = await job_of(state, job_id)
    assert (job.status, job.total, job.done, job.skipped) == ("Done", 5000, 5000, 0)
    assert job.cursor is not None
    assert job.cursor["Batches"] == 10
    async with state.sessions() as session:
        by_status = dict(
            (
                await session.execute(
                    select(Sending.cause, func.count())
                    .where(Sending.status == "Pending")
                    .group_by(Sending.cause)
                )
            ).all()
        )
    assert by_status == {"timeout": 5000}
    batches = await audit_entries(state, "resend_job.batch")
    assert len(batches) == 10
    assert {b.affected_count for b in batches} == {500}
    assert len({i for b in batches for i in b.affected}) == 5000
    assert await count(state, Sending) == 5007


async def test_two_runners_never_work_the_same_job_and_a_restart_resumes(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState, clock: FrozenClock
) -> None:
    await seed_many(state, 1200, status=Status.FAILED, cause="timeout")
    response = await post(client, RESENDS, {"Cause": "timeout", "Reason": "x"}, admin_headers)
    job_id = uuid.UUID(response.json()["Data"]["JobId"])
    clock.advance(timedelta(seconds=1))

    assert await claim_job(state, owner="a", job_id=job_id) == job_id
    assert await claim_job(state, owner="b", job_id=job_id) is None
    assert await claim_job(state, owner="b") is None
    with pytest.raises(LeaseLost):
        await run_batch(state, job_id, owner="b")
    assert await run_batch(state, job_id, owner="a") == 500

    # Runner a dies without a word; its lease expires and b resumes after a's last batch.
    clock.advance(timedelta(seconds=state.settings.lease_seconds + 1))
    assert await claim_job(state, owner="b") == job_id
    with pytest.raises(LeaseLost):
        await run_batch(state, job_id, owner="a")
    await run_job_once(state, job_id, owner="b")

    job = await job_of(state, job_id)
    assert (job.status, job.done, job.skipped, job.total) == ("Done", 1200, 0, 1200)
    batches = await audit_entries(state, "resend_job.batch")
    affected = [i for b in batches for i in b.affected]
    assert len(affected) == len(set(affected)) == 1200


async def test_a_named_list_includes_discarded_ones_and_says_what_was_left_out(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    aborted, failed, queued, sent = await seed(
        state, make(Status.ABORTED), make(Status.FAILED), make(Status.PENDING), make(Status.SENT)
    )
    discard = await post(client, discard_url(aborted), {"Reason": "duplicate"}, admin_headers)
    assert discard.status_code == 200
    missing = uuid.uuid4()
    body = {
        "SendingIds": [str(i) for i in (aborted, failed, queued, sent, missing)],
        "Reason": "these five",
    }

    response = await post(client, RESENDS, body, admin_headers)

    data = response.json()["Data"]
    assert (data["Total"], data["SentLeftOut"]) == (2, 1)
    assert data["Selection"]["SendingIdCount"] == 5
    notes = " ".join(data["Notes"])
    assert "1 named sending(s) are left out" in notes
    assert "1 named sending(s) do not" in notes
    await run_job_once(state, uuid.UUID(data["JobId"]))
    statuses = {k: s.status for k, s in (await sendings_by_id(state)).items()}
    assert statuses == {aborted: "Pending", failed: "Pending", queued: "Pending", sent: "Sent"}
    job = await job_of(state, data["JobId"])
    assert (job.done, job.skipped) == (2, 0)


async def test_bulk_requests_and_answers_in_xml(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    ids = await _cause_groups(state)
    body = (
        '<ResendRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        "<Cause>http-503</Cause><DryRun>true</DryRun><Filter><System>MediSwitch</System>"
        "<Status><string>Aborted</string></Status></Filter><Reason>look</Reason>"
        '<PreviewJobId i:nil="true"/></ResendRequest>'
    )
    xml = {**admin_headers, "Content-Type": "application/xml", "Accept": "application/xml"}

    response = await client.post(RESENDS, content=body, headers=xml)

    assert response.status_code == 202, response.text
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{{{SERVICE_NS}}}RestApiResultOfResendJob"
    data = xml_fields(root)["Data"]
    assert (data["Total"], data["DryRun"], data["Status"]) == ("2", "true", "Done")
    sample_element = root.find(f"{{{SERVICE_NS}}}Data/{{{SERVICE_NS}}}Sample")
    assert sample_element is not None
    sample = [e.text or "" for e in sample_element]
    assert sorted(sample) == sorted(str(ids[k]) for k in ("a1", "a2"))
    read = await client.get(f"{RESENDS}/{data['JobId']}", headers=xml)
    assert read.status_code == 200
    assert xml_fields(ElementTree.fromstring(read.content))["Data"]["JobId"] == data["JobId"]
    listing = await client.get(RESENDS, headers=xml)
    assert listing.status_code == 200
    assert ElementTree.fromstring(listing.content).tag.endswith("RestApiResultOfResendJobList")


async def test_recent_jobs_are_listed_newest_first(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState, clock: FrozenClock
) -> None:
    first = await post(
        client, RESENDS, {"Cause": "a", "DryRun": True, "Reason": "x"}, admin_headers
    )
    clock.advance(timedelta(seconds=1))
    second = await post(client, RESENDS, {"Cause": "b", "Reason": "x"}, admin_headers)

    listing = await client.get(RESENDS, headers=admin_headers)
    running = await client.get(RESENDS, params={"status": "Running"}, headers=admin_headers)

    jobs = listing.json()["Data"]["Jobs"]
    assert [j["JobId"] for j in jobs] == [
        second.json()["Data"]["JobId"],
        first.json()["Data"]["JobId"],
    ]
    assert [j["JobId"] for j in running.json()["Data"]["Jobs"]] == [jobs[0]["JobId"]]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"Cause": "http-503"}, "Reason"),
        ({"Reason": "x"}, "give Cause, SendingIds or Filter"),
        ({"Cause": "http-503", "Reason": "   "}, "Reason"),
        ({"Filter": {"Status": ["Pending"]}, "Reason": "x"}, "Pending cannot be resent"),
        ({"Filter": {"From": "2026-02-01T00:00:00"}, "Reason": "x"}, "timezone"),
        ({"SendingIds": ["nope"], "Reason": "x"}, "SendingIds"),
        (
            {"Cause": "x", "Reason": "x", "DryRun": True, "PreviewJobId": str(uuid.uuid4())},
            "PreviewJobId",
        ),
        ({"Cause": "x", "Reason": "x", "RatePerSecond": 0}, "RatePerSecond"),
    ],
)
async def test_bad_bulk_bodies_are_400(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    body: dict[str, Any],
    words: str,
) -> None:
    response = await post(client, RESENDS, body, admin_headers)
    assert response.status_code == 400, response.text
    assert words in response.json()["Message"]
    assert await count(state, ResendJob) == 0


async def test_bulk_routes_are_for_admins_only(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
) -> None:
    created = await post(
        client, RESENDS, {"Cause": "x", "DryRun": True, "Reason": "x"}, admin_headers
    )
    job_url = f"{RESENDS}/{created.json()['Data']['JobId']}"
    practice_b = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_B)}"}
    for headers in (practice_headers, practice_b):
        assert (
            await post(client, RESENDS, {"Cause": "x", "Reason": "x"}, headers)
        ).status_code == 403
        assert (await client.get(job_url, headers=headers)).status_code == 403
        assert (await client.get(RESENDS, headers=headers)).status_code == 403
    assert (await client.post(RESENDS, json={"Cause": "x", "Reason": "x"})).status_code == 401
    assert (await client.get(f"{RESENDS}/{uuid.uuid4()}", headers=admin_headers)).status_code == 404


async def test_the_background_runner_works_jobs_and_stops_when_told(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    await seed_many(state, 30, status=Status.ABORTED, cause="timeout")
    response = await post(
        client, RESENDS, {"Cause": "timeout", "Reason": "x", "RatePerSecond": 10_000}, admin_headers
    )
    job_id = response.json()["Data"]["JobId"]
    finished = asyncio.Event()
    real_finish = resend_loop._finish

    async def finish_and_tell(*args: Any, **kwargs: Any) -> None:
        await real_finish(*args, **kwargs)
        finished.set()

    monkeypatch.setattr(resend_loop, "_finish", finish_and_tell)
    stop = asyncio.Event()
    runner = asyncio.create_task(resend_loop.run_resend_jobs(state, stop))
    try:
        await asyncio.wait_for(finished.wait(), timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)
    job = await job_of(state, job_id)
    assert (job.status, job.done, job.lease_owner) == ("Done", 30, None)


async def test_a_batch_that_keeps_failing_ends_the_job_as_failed(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(state, *(make(Status.ABORTED, cause="timeout") for _ in range(3)))
    response = await post(client, RESENDS, {"Cause": "timeout", "Reason": "x"}, admin_headers)
    job_id = uuid.UUID(response.json()["Data"]["JobId"])

    async def broken(*_args: Any, **_kwargs: Any) -> Sequence[uuid.UUID]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(resend_loop, "requeue", broken)
    await run_job_once(state, job_id)

    job = await job_of(state, job_id)
    assert (job.status, job.done, job.failed, job.total) == ("Failed", 0, 3, 3)
    assert job.error is not None
    assert "RuntimeError" in job.error
    assert {s.status for s in (await sendings_by_id(state)).values()} == {"Aborted"}
    [finish] = await audit_entries(state, "resend_job.finish")
    assert finish.details["Status"] == "Failed"
