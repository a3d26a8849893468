"""The practice's invoice number (optional `InvoiceNumber`) through every way in, both engines.

A label on the invoice's sendings, not part of what is sent: giving or changing it never makes
a submission a correction, a submission without one leaves the number given earlier alone, and
the single route, the batch route and a re-submission all write it the same way.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import PRACTICE_A
from tests.pipeline_helpers import configure_system, invoice_body, submit
from tests.receivers import HttpReceiver

BATCH = f"/api/v1/{PRACTICE_A}/billing/invoices/batch"


@pytest.fixture
async def system(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> str:
    await configure_system(client, admin_headers, "MediSwitch", receiver.url + "m")
    return "MediSwitch"


async def number_of(
    client: httpx.AsyncClient, headers: dict[str, str], invoice_id: str
) -> str | None:
    response = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{invoice_id}",
        headers={**headers, "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    number: str | None = response.json()["InvoiceNumber"]
    return number


async def test_a_number_is_kept_changed_and_never_a_correction(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str
) -> None:
    body = invoice_body()
    invoice_id = body["InvoiceId"]
    first = await submit(client, practice_headers, {**body, "InvoiceNumber": " INV-1 "})
    assert first.json()["Data"][0]["Status"] == "Pending"
    assert await number_of(client, practice_headers, invoice_id) == "INV-1"  # trimmed

    # The same document without a number: a duplicate, and the number stays.
    await submit(client, practice_headers, body)
    assert await number_of(client, practice_headers, invoice_id) == "INV-1"

    # The same document with another number: still a duplicate (no correction), new number.
    response = await client.post(
        BATCH,
        content=orjson.dumps([{**body, "InvoiceNumber": "INV-2"}]),
        headers={**practice_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [result] = response.json()["Data"]
    assert result["Outcome"] == "Duplicate"
    assert await number_of(client, practice_headers, invoice_id) == "INV-2"


async def test_batch_items_carry_their_own_numbers(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str
) -> None:
    items = [{**invoice_body(), "InvoiceNumber": f"B-{n}"} for n in range(3)]
    items.append(invoice_body())  # none given
    response = await client.post(
        BATCH,
        content=orjson.dumps(items),
        headers={**practice_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [r["Outcome"] for r in response.json()["Data"]] == ["Accepted"] * 4
    numbers = [await number_of(client, practice_headers, item["InvoiceId"]) for item in items]
    assert numbers == ["B-0", "B-1", "B-2", None]


@pytest.mark.parametrize("number", ["", "x" * 65, "INV\x07"])
async def test_a_bad_number_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, practice_headers: dict[str, str], system: str, number: str
) -> None:
    body = {**invoice_body(), "InvoiceNumber": number}
    response = await submit(client, practice_headers, body, expect=400)
    assert response.json()["Message"]
    detail = await client.get(
        f"/api/v1/{PRACTICE_A}/billing/invoices/{body['InvoiceId']}", headers=practice_headers
    )
    assert detail.status_code == 404
