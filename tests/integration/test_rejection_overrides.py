"""Administrators' overrides of the rejection catalogue, and cause groups keyed on it."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from invoice_outbox.state import AppState
from tests.pipeline_helpers import configure_system, invoice_body, running_worker, submit
from tests.receivers import HttpReceiver, Reply

ACCEPTANCE = {
    "Mode": "Response",
    "Kind": "switch",
    "CodePointer": "/code",
    "Accepted": ["00"],
}
OVERRIDE = {
    "Label": "Scheme closed for new claims",
    "Meaning": "This medical aid scheme no longer takes claims through this switch.",
    "Fix": "Ask your administrator which switch the scheme uses now.",
    "WhoMustAct": "administrator",
    "ResendHelps": False,
}


def _reply(code: str) -> Reply:
    return Reply(200, {"Content-Type": "application/json"}, orjson.dumps({"code": code}))


async def _deliver(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
    codes: list[str],
) -> None:
    for code in codes:
        receiver.script(_reply(code))
        await submit(client, headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == len(codes)


async def _groups(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/billing/causes", headers=headers)
    assert response.status_code == 200, response.text
    return {g["Cause"]: g for g in response.json()["Groups"]}


async def test_groups_key_on_catalogue_entries_and_overrides_explain_unknown_codes(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, Acceptance=ACCEPTANCE)
    await _deliver(client, admin_headers, state, receiver, ["04", "04", "04", "77"])
    groups = await _groups(client, admin_headers)
    member = groups["code-k-switch-04"]
    assert (member["Count"], member["Label"], member["WhoMustAct"]) == (
        3,
        "Invalid member number",
        "practice",
    )
    assert (member["ResendHelps"], member["ResendAll"]) == (False, False)
    assert member["Fix"].startswith("Check the membership number")
    unknown = groups["code-s-mediswitch-77"]
    assert (unknown["Known"], unknown["Count"]) == (False, 1)

    put = await client.put(
        "/api/v1/billing/systems/MediSwitch/rejections/77", json=OVERRIDE, headers=admin_headers
    )
    assert put.status_code == 201, put.text
    assert put.json()["Source"] == "override"
    again = await client.put(
        "/api/v1/billing/systems/MediSwitch/rejections/77", json=OVERRIDE, headers=admin_headers
    )
    assert again.status_code == 200
    # The failure already recorded reads the new words at once.
    explained = (await _groups(client, admin_headers))["code-s-mediswitch-77"]
    assert (explained["Known"], explained["Label"], explained["WhoMustAct"]) == (
        True,
        "Scheme closed for new claims",
        "administrator",
    )
    listed = await client.get(
        "/api/v1/billing/systems/MediSwitch/rejections", headers=admin_headers
    )
    entries = {e["Code"]: e for e in listed.json()["Entries"]}
    assert entries["77"]["Source"] == "override"
    assert entries["04"]["Kind"] == "switch"
    # An override of a kind's code applies to this system's new rejections.
    await client.put(
        "/api/v1/billing/systems/MediSwitch/rejections/04",
        json={**OVERRIDE, "Label": "Member number (MediSwitch's words)"},
        headers=admin_headers,
    )
    await _deliver(client, admin_headers, state, receiver, ["04"])
    groups = await _groups(client, admin_headers)
    assert groups["code-s-mediswitch-04"]["Label"] == "Member number (MediSwitch's words)"
    assert groups["code-k-switch-04"]["Count"] == 3
    deleted = await client.delete(
        "/api/v1/billing/systems/MediSwitch/rejections/77", headers=admin_headers
    )
    assert deleted.status_code == 204
    gone = await client.delete(
        "/api/v1/billing/systems/MediSwitch/rejections/77", headers=admin_headers
    )
    assert gone.status_code == 404
    audit = (await client.get("/api/v1/billing/audit", headers=admin_headers)).json()["Items"]
    assert [i["Action"] for i in audit][:4] == [
        "rejection.delete",
        "rejection.put",
        "rejection.put",
        "rejection.put",
    ]


async def test_no_blind_resend_of_a_group_whose_fix_is_a_correction(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    receiver: HttpReceiver,
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, Acceptance=ACCEPTANCE)
    await _deliver(client, admin_headers, state, receiver, ["04", "91"])
    refused = await client.post(
        "/api/v1/billing/resends",
        json={"Cause": "code-k-switch-04", "Reason": "try again"},
        headers=admin_headers,
    )
    assert refused.status_code == 409, refused.text
    assert "correction" in refused.json()["Message"]
    preview = await client.post(
        "/api/v1/billing/resends",
        json={"Cause": "code-k-switch-04", "Reason": "look", "DryRun": True},
        headers=admin_headers,
    )
    assert preview.status_code == 202, preview.text
    helps = await client.post(
        "/api/v1/billing/resends",
        json={"Cause": "code-k-switch-91", "Reason": "the scheme is back"},
        headers=admin_headers,
    )
    assert helps.status_code == 202, helps.text
    forced = await client.post(
        "/api/v1/billing/resends",
        json={"Cause": "code-k-switch-04", "Reason": "switch fixed its side", "Force": True},
        headers=admin_headers,
    )
    assert forced.status_code == 202, forced.text


async def test_override_input_is_checked(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> None:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    bad_who = await client.put(
        "/api/v1/billing/systems/MediSwitch/rejections/04",
        json={**OVERRIDE, "WhoMustAct": "patient"},
        headers=admin_headers,
    )
    assert bad_who.status_code == 400
    missing = await client.put(
        "/api/v1/billing/systems/Nope/rejections/04", json=OVERRIDE, headers=admin_headers
    )
    assert missing.status_code == 404
