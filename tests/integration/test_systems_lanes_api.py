"""The systems API's lane settings: defaults, validation, the audit, and the lane it shows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PRACTICE_A

ROUTE = "/api/v1/billing/systems/Ledger"


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "Channel": "Http",
        "Url": "http://127.0.0.1:9/",
        "Practices": [str(PRACTICE_A)],
        **extra,
    }


async def test_defaults_give_every_system_a_lane_of_its_own(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.put(ROUTE, json=_body(), headers=admin_headers)
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["MaxInFlight"], view["RatePerSecond"]) == (8, None)
    assert view["Lane"] == {
        "State": "Idle",
        "InFlight": 0,
        "MaxInFlight": 8,
        "RatePerSecond": None,
        "Due": 0,
        "Queued": 0,
        "Held": 0,
        "HeldReason": None,
        "HeldSince": None,
        "OldestDueAgeSeconds": None,
        "ThrottledUntil": None,
    }
    assert view["Health"]["LastSuccessAt"] is None


async def test_lane_settings_are_kept_shown_and_audited(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.put(ROUTE, json=_body(), headers=admin_headers)
    changed = await client.put(
        ROUTE, json=_body(MaxInFlight=2, RatePerSecond=10), headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    shown = (await client.get(ROUTE, headers=admin_headers)).json()
    assert (shown["MaxInFlight"], shown["RatePerSecond"]) == (2, 10.0)
    assert (shown["Lane"]["MaxInFlight"], shown["Lane"]["RatePerSecond"]) == (2, 10.0)
    listed = (await client.get("/api/v1/billing/systems", headers=admin_headers)).json()
    assert [s["MaxInFlight"] for s in listed["Systems"]] == [2]
    audit = await client.get(
        "/api/v1/billing/audit", params={"action": "system.put"}, headers=admin_headers
    )
    entries = audit.json()["Items"]
    assert sorted(entries[0]["Details"]["Changed"]) == ["MaxInFlight", "RatePerSecond"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"MaxInFlight": 0}, "MaxInFlight"),
        ({"MaxInFlight": "many"}, "MaxInFlight"),
        ({"RatePerSecond": 0}, "RatePerSecond"),
        ({"RatePerSecond": -5}, "RatePerSecond"),
    ],
)
async def test_bad_lane_settings_are_a_clear_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], extra: dict[str, Any], field: str
) -> None:
    response = await client.put(ROUTE, json=_body(**extra), headers=admin_headers)
    assert response.status_code == 400
    assert field in response.json()["Message"]
