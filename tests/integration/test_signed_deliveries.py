"""Signed deliveries: Standard Webhooks headers on every HTTP delivery of a system with a
signing secret, verified here by an independent implementation (tests/webhook_signing.py),
and rotation with an overlap (two secrets valid at once, then only the new one)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from invoice_outbox.clock import FrozenClock
from invoice_outbox.state import AppState
from tests.pipeline_helpers import configure_system, invoice_body, running_worker, submit
from tests.receivers import HttpReceiver
from tests.webhook_signing import SIGNING_SECRET, new_secret, verifies


async def _deliver(client: httpx.AsyncClient, headers: dict[str, str], state: AppState) -> None:
    await submit(client, headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == 1


async def test_deliveries_carry_a_signature_a_receiver_verifies(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
    receiver: HttpReceiver,
) -> None:
    view = await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, SigningSecret=SIGNING_SECRET
    )
    assert view["Signing"] == {"HasSecret": True, "PreviousSecretValidUntil": None}
    assert SIGNING_SECRET not in str(view)
    fetched = await client.get("/api/v1/billing/systems/MediSwitch", headers=admin_headers)
    assert SIGNING_SECRET.removeprefix("whsec_") not in fetched.text
    await _deliver(client, admin_headers, state)
    [request] = receiver.requests
    headers = dict(request.headers)
    assert verifies(SIGNING_SECRET, headers, request.body)
    assert not verifies(new_secret(), headers, request.body)
    assert not verifies(SIGNING_SECRET, headers, request.body + b" ")
    assert headers["webhook-id"] == request.header("Idempotency-Key")
    assert headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert len(headers["webhook-signature"].split()) == 1


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    clock: FrozenClock,
    receiver: HttpReceiver,
) -> None:
    await configure_system(
        client, admin_headers, "MediSwitch", receiver.url, SigningSecret=SIGNING_SECRET
    )
    rotated = new_secret()
    view = await configure_system(
        client,
        admin_headers,
        "MediSwitch",
        receiver.url,
        SigningSecret=rotated,
        SecretOverlapSeconds=3600,
    )
    assert view["Signing"]["PreviousSecretValidUntil"] == "2026-02-05T17:06:25Z"
    # Keeping the configuration (secret omitted) keeps both secrets and the overlap.
    await configure_system(client, admin_headers, "MediSwitch", receiver.url)
    await _deliver(client, admin_headers, state)
    during = receiver.requests[-1]
    assert len(dict(during.headers)["webhook-signature"].split()) == 2
    assert verifies(SIGNING_SECRET, dict(during.headers), during.body)
    assert verifies(rotated, dict(during.headers), during.body)

    clock.advance(timedelta(hours=1, seconds=1))
    await _deliver(client, admin_headers, state)
    after = receiver.requests[-1]
    assert verifies(rotated, dict(after.headers), after.body)
    assert not verifies(SIGNING_SECRET, dict(after.headers), after.body)

    # An empty secret removes signing.
    await configure_system(client, admin_headers, "MediSwitch", receiver.url, SigningSecret="")
    await _deliver(client, admin_headers, state)
    assert receiver.requests[-1].header("webhook-signature") is None


async def test_a_secret_that_is_not_whsec_base64_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: HttpReceiver
) -> None:
    for bad in ("not-a-secret", "whsec_%%%", "whsec_c2hvcnQ="):
        response = await client.put(
            "/api/v1/billing/systems/MediSwitch",
            json={"Channel": "Http", "Url": receiver.url, "SigningSecret": bad},
            headers=admin_headers,
        )
        assert response.status_code == 400, response.text
        assert "SigningSecret" in response.json()["Message"]
        assert bad not in response.json()["Message"]
