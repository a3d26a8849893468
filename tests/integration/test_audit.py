"""The audit log: every state-changing action is recorded, append-only, and readable with
filters.  Both engines."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from defusedxml import ElementTree
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from invoice_outbox.admin import audit
from invoice_outbox.admin.models import AuditEntry
from invoice_outbox.admin.resend_loop import run_job_once
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.cli import app as cli_app
from invoice_outbox.clock import FrozenClock
from invoice_outbox.db.engine import make_sync_engine
from invoice_outbox.legacy.json_format import json_envelope, json_envelope_rows
from invoice_outbox.legacy.xml_format import xml_envelope_guid, xml_envelope_rows
from invoice_outbox.legacy.xml_objects import SERVICE_NS
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.queries import STATUS_VO_COLUMNS
from invoice_outbox.sendings.status import Status
from invoice_outbox.state import AppState
from tests.conftest import NOW, PRACTICE_A, PRACTICE_B
from tests.integration.test_resends import (
    RESENDS,
    discard_url,
    make,
    post,
    resend_url,
    seed,
)
from tests.pipeline_helpers import configure_system, invoice_body, submit

AUDIT = "/api/v1/billing/audit"
SECRET = "s3cret-value-never-logged"


async def _entries(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(AUDIT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    value: dict[str, Any] = response.json()
    return value


async def test_the_audit_table_refuses_updates_and_deletes(state: AppState) -> None:
    async with state.sessions() as session:
        await audit.record(
            session,
            principal=Principal("someone", Role.ADMIN),
            action="sendings.resend",
            reason="why",
            affected=[uuid.uuid4()],
            now=NOW,
        )
        await session.commit()
    for statement in (
        update(AuditEntry).values(reason="rewritten"),
        delete(AuditEntry),
        text("UPDATE audit_entries SET actor = 'nobody'"),
        text("DELETE FROM audit_entries"),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with state.sessions() as session, session.begin():
                await session.execute(statement)
    async with state.sessions() as session:
        [entry] = (await session.scalars(select(AuditEntry))).all()
    assert (entry.actor, entry.reason) == ("someone", "why")


async def test_every_state_changing_action_is_recorded(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
) -> None:
    system = {"Channel": "Http", "Url": "http://127.0.0.1:9/in", "Practices": [str(PRACTICE_A)]}
    assert (
        await client.put("/api/v1/billing/systems/MediSwitch", json=system, headers=admin_headers)
    ).status_code == 201
    changed = {
        **system,
        "Url": "http://127.0.0.1:9/v2?key=q-secret",
        "AuthHeader": "X-Key",
        "AuthValue": SECRET,
        "Practices": [str(PRACTICE_A), str(PRACTICE_B)],
    }
    assert (
        await client.put(
            "/api/v1/billing/systems/MediSwitch",
            json=changed,
            params={"reason": "new endpoint"},
            headers=admin_headers,
        )
    ).status_code == 200
    failed, aborted, other = await seed(
        state, make(Status.FAILED), make(Status.ABORTED), make(Status.ABORTED, cause="timeout")
    )
    body = invoice_body()
    await submit(client, practice_headers, body)
    cancel = f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}/cancel"
    assert (await client.post(cancel, headers=practice_headers)).status_code == 200
    assert (
        await post(client, discard_url(aborted), {"Reason": "dup"}, admin_headers)
    ).status_code == 200
    job = await post(
        client, RESENDS, {"SendingIds": [str(failed)], "Reason": "bulk"}, admin_headers
    )
    await run_job_once(state, uuid.UUID(job.json()["Data"]["JobId"]))
    retry = await client.post("/api/v1/billing/invoices/retryallfailed", headers=admin_headers)
    assert len(retry.json()["Data"]) == 1
    assert (
        await post(client, resend_url(aborted), {"Reason": "not a dup"}, admin_headers)
    ).status_code == 200

    log = await _entries(client, admin_headers)

    assert log["NextCursor"] is None
    items = log["Items"]
    assert list(items[0]) == [
        "Id",
        "Time",
        "Actor",
        "ActorRole",
        "Action",
        "Reason",
        "PracticeId",
        "Target",
        "Affected",
        "AffectedCount",
        "Details",
    ]
    assert [i["Action"] for i in reversed(items)] == [
        "system.put",
        "system.put",
        "invoice.cancel",
        "sendings.discard",
        "resend_job.start",
        "resend_job.batch",
        "resend_job.finish",
        "sendings.retry_all",
        "sendings.resend",
    ]
    by_action = {i["Action"]: i for i in items}
    assert all(i["Time"] == "2026-02-05T16:06:25Z" for i in items)
    created, updated = (i for i in reversed(items) if i["Action"] == "system.put")
    assert created["Details"]["Created"] is True
    assert created["Target"] == "MediSwitch"
    assert (created["Reason"], updated["Reason"]) == (None, "new endpoint")
    assert updated["Details"] == {
        "Created": False,
        "Changed": ["AuthHeader", "Practices", "Url", "Secret"],
        "PracticesAdded": [str(PRACTICE_B)],
        "PracticesRemoved": [],
    }
    raw = orjson.dumps(items).decode()
    assert SECRET not in raw
    assert "q-secret" not in raw
    cancelled = by_action["invoice.cancel"]
    assert (cancelled["Actor"], cancelled["ActorRole"], cancelled["PracticeId"]) == (
        "test-practice",
        "practice",
        str(PRACTICE_A),
    )
    assert cancelled["Target"] == body["InvoiceId"]
    assert cancelled["AffectedCount"] == 1
    assert cancelled["Reason"] == "cancel invoice (legacy route)"
    retried = by_action["sendings.retry_all"]
    assert retried["Reason"] == "retry all failed (legacy route)"
    assert (retried["Affected"], retried["AffectedCount"]) == ([str(other)], 1)
    assert by_action["sendings.discard"]["Reason"] == "dup"
    assert by_action["sendings.resend"]["Affected"] == [str(aborted)]
    assert by_action["resend_job.start"]["AffectedCount"] == 1
    assert by_action["resend_job.batch"]["Affected"] == [str(failed)]
    assert by_action["resend_job.finish"]["Details"]["Done"] == 1


async def test_filters_and_paging(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    admin = Principal("alice", Role.ADMIN)
    practice = Principal("bob", Role.PRACTICE, frozenset({PRACTICE_A}))
    async with state.sessions() as session:
        for hour, (who, action, practice_id) in enumerate(
            [
                (admin, "sendings.resend", PRACTICE_A),
                (practice, "invoice.cancel", PRACTICE_A),
                (admin, "system.put", None),
                (admin, "sendings.resend", PRACTICE_B),
                (practice, "sendings.discard", PRACTICE_A),
            ]
        ):
            await audit.record(
                session,
                principal=who,
                action=action,
                reason=f"r{hour}",
                practice_id=practice_id,
                target=f"t{hour}",
                now=NOW + timedelta(hours=hour),
            )
        await session.commit()

    def reasons(value: dict[str, Any]) -> list[str]:
        return [i["Reason"] for i in value["Items"]]

    assert reasons(await _entries(client, admin_headers)) == ["r4", "r3", "r2", "r1", "r0"]
    assert reasons(await _entries(client, admin_headers, actor="bob")) == ["r4", "r1"]
    assert reasons(await _entries(client, admin_headers, action="sendings.resend")) == ["r3", "r0"]
    assert reasons(await _entries(client, admin_headers, practiceId=str(PRACTICE_B))) == ["r3"]
    assert reasons(await _entries(client, admin_headers, target="t2")) == ["r2"]
    window = {
        "from": (NOW + timedelta(hours=1)).isoformat(),
        "to": (NOW + timedelta(hours=3)).isoformat(),
    }
    assert reasons(await _entries(client, admin_headers, **window)) == ["r2", "r1"]
    assert reasons(await _entries(client, admin_headers, actor="alice", **window)) == ["r2"]

    pages: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await _entries(client, admin_headers, **params)
        pages.append(",".join(reasons(page)))
        cursor = page["NextCursor"]
        if cursor is None:
            break
    assert pages == ["r4,r3", "r2,r1", "r0"]


async def test_paging_is_stable_when_many_entries_share_a_time(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    async with state.sessions() as session:
        for n in range(7):
            await audit.record(
                session, principal=audit.CLI, action="user.add", reason=str(n), now=NOW
            )
        await session.commit()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await _entries(
            client, admin_headers, limit=3, **({"cursor": cursor} if cursor else {})
        )
        seen += [i["Reason"] for i in page["Items"]]
        if (cursor := page["NextCursor"]) is None:
            break
    assert seen == [str(n) for n in reversed(range(7))]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"from": "2026-02-30"}, "from is not a date"),
        ({"to": "0.5"}, "to is not a date"),  # not a Unix time: read as the lists read it
        ({"to": "9999-12-31"}, "to is not a date"),
        ({"to": "yesterday"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"practiceId": "nope"}, "practiceId"),
    ],
)
async def test_bad_audit_parameters_are_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, str], words: str
) -> None:
    response = await client.get(AUDIT, params=params, headers=admin_headers)
    assert response.status_code == 400
    assert words in response.json()["Message"]


async def test_the_audit_log_is_for_admins_only(
    client: httpx.AsyncClient, practice_headers: dict[str, str]
) -> None:
    assert (await client.get(AUDIT, headers=practice_headers)).status_code == 403
    assert (await client.get(AUDIT)).status_code == 401


async def test_the_audit_log_in_xml(
    client: httpx.AsyncClient, admin_headers: dict[str, str], state: AppState
) -> None:
    sending_id = uuid.uuid4()
    async with state.sessions() as session:
        await audit.record(
            session,
            principal=Principal("alice", Role.ADMIN),
            action="sendings.resend",
            reason="a < b",
            affected=[sending_id],
            details={"Forced": True},
            now=NOW,
        )
        await session.commit()
    response = await client.get(AUDIT, headers={**admin_headers, "Accept": "application/xml"})
    assert response.status_code == 200
    root = ElementTree.fromstring(response.content)
    ns = f"{{{SERVICE_NS}}}"
    assert root.tag == f"{ns}AuditLog"
    [item] = root.find(f"{ns}Items") or []
    assert [c.tag.removeprefix(ns) for c in item] == sorted(
        [
            "Id",
            "Time",
            "Actor",
            "ActorRole",
            "Action",
            "Reason",
            "PracticeId",
            "Target",
            "Affected",
            "AffectedCount",
            "Details",
        ]
    )
    assert item.findtext(f"{ns}Reason") == "a < b"
    assert item.findtext(f"{ns}Time") == "2026-02-05T18:06:25.576601+02:00"
    assert [e.text for e in item.find(f"{ns}Affected") or []] == [str(sending_id)]
    assert item.findtext(f"{ns}Details/{ns}Forced") == "true"
    next_cursor = root.find(f"{ns}NextCursor")
    assert next_cursor is not None
    assert next_cursor.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"


async def test_at_most_1000_affected_ids_are_stored_with_the_full_count(state: AppState) -> None:
    ids = [uuid.uuid4() for _ in range(1500)]
    async with state.sessions() as session:
        entry = await audit.record(
            session,
            principal=audit.CLI,
            action="sendings.retry_all",
            reason=None,
            affected=ids,
            now=NOW,
        )
        await session.commit()
    assert entry.affected_count == 1500
    assert entry.affected == [str(i) for i in ids[:1000]]


def test_user_add_on_the_command_line_is_recorded(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOICE_OUTBOX_DATABASE_URL", database_url)
    monkeypatch.setenv("INVOICE_OUTBOX_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(
        cli_app,
        [
            "user",
            "add",
            "carol",
            "--role",
            "practice",
            "--practice",
            str(PRACTICE_B),
            "--password-stdin",
        ],
        input="correct horse battery\n",
    )
    assert result.exit_code == 0, result.output
    assert "user 'carol' added (practice)" in result.output
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            [entry] = connection.execute(select(AuditEntry)).all()
    finally:
        engine.dispose()
    assert (entry.actor, entry.actor_role, entry.action, entry.target) == (
        "cli",
        "cli",
        "user.add",
        "carol",
    )
    assert entry.practice_id == PRACTICE_B
    assert entry.details == {"Role": "practice", "Practices": [str(PRACTICE_B)]}
    assert "correct horse" not in orjson.dumps(entry.details).decode()


@pytest.mark.parametrize("accept", ["application/json", "application/xml"])
async def test_auditing_leaves_the_legacy_answers_byte_for_byte_as_they_were(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    practice_headers: dict[str, str],
    state: AppState,
    accept: str,
) -> None:
    """retryallfailed and cancel answer exactly what the legacy writers make of the rows."""
    await seed(state, make(Status.ABORTED), make(Status.FAILED), make(Status.SENT))
    headers = {**admin_headers, "Accept": accept}

    response = await client.post("/api/v1/billing/invoices/retryallfailed", headers=headers)

    order = [uuid.UUID(i) for i in re.findall(r"InvoiceId[\">:]+([0-9a-f-]{36})", response.text)]
    async with state.sessions() as session:
        found = {
            row[2]: tuple(row)
            for row in (
                await session.execute(select(*STATUS_VO_COLUMNS).where(Sending.status == "Pending"))
            ).all()
        }
    rows = [found[i] for i in order]
    assert len(rows) == 2
    message = "2 sending(s) queued again"
    if accept == "application/json":
        expected = json_envelope_rows(
            sucess=True, response_code=200, response_message=message, rows=rows, links=[]
        )
    else:
        expected = xml_envelope_rows(
            sucess=True,
            response_code=200,
            response_message=message,
            rows=rows,
            zone=state.settings.zone,
            links=[],
        )
    assert response.content == expected

    await configure_system(client, admin_headers, "MediSwitch", "http://127.0.0.1:9/in")
    body = invoice_body()
    await submit(client, practice_headers, body)
    cancel = f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}/cancel"
    cancelled = await client.post(cancel, headers={**practice_headers, "Accept": accept})
    message = "Invoice cancelled (1 sending(s) changed or queued)"
    invoice_id = uuid.UUID(body["InvoiceId"])
    if accept == "application/json":
        expected = json_envelope(
            sucess=True, response_code=200, response_message=message, data=invoice_id, links=[]
        )
    else:
        expected = xml_envelope_guid(
            sucess=True, response_code=200, response_message=message, data=invoice_id, links=[]
        )
    assert cancelled.content == expected
