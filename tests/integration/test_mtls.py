"""mTLS: a system's client certificate (write-only) presented to a local TLS server that
requires one, through the API and a real worker; without it the handshake is refused."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
import trustme

from invoice_outbox.state import AppState
from tests.pipeline_helpers import (
    all_sendings,
    configure_system,
    invoice_body,
    running_worker,
    submit,
)
from tests.receivers import HttpReceiver


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def strict_receiver(ca: trustme.CA) -> AsyncIterator[HttpReceiver]:
    """HTTPS on loopback that refuses any client without a certificate from `ca`."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(cadata=ca.cert_pem.bytes().decode())
    async with HttpReceiver(tls_context=server) as running:
        yield running


def _client_pem(ca: trustme.CA) -> tuple[str, str]:
    leaf = ca.issue_cert("practice-billing.example")
    chain = "".join(blob.bytes().decode() for blob in leaf.cert_chain_pems)
    return chain, leaf.private_key_pem.bytes().decode()


async def test_the_client_certificate_is_presented_and_never_shown(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    strict_receiver: HttpReceiver,
    ca: trustme.CA,
) -> None:
    certificate, key = _client_pem(ca)
    view = await configure_system(
        client,
        admin_headers,
        "SecureSwitch",
        strict_receiver.url + "claims",
        ClientCertificate=certificate,
        ClientKey=key,
        CaCertificate=ca.cert_pem.bytes().decode(),
    )
    assert view["HasClientCertificate"] is True
    fetched = await client.get("/api/v1/billing/systems/SecureSwitch", headers=admin_headers)
    assert "PRIVATE KEY" not in fetched.text
    assert "BEGIN CERTIFICATE" not in fetched.text
    await submit(client, admin_headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [sending] = await all_sendings(state)
    assert sending.status == "Sent", sending.reason
    assert len(strict_receiver.requests) == 1


async def test_without_a_client_certificate_the_server_refuses(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    state: AppState,
    strict_receiver: HttpReceiver,
    ca: trustme.CA,
) -> None:
    await configure_system(
        client,
        admin_headers,
        "SecureSwitch",
        strict_receiver.url,
        CaCertificate=ca.cert_pem.bytes().decode(),
    )
    await submit(client, admin_headers, invoice_body())
    async with running_worker(state) as worker:
        assert await worker.drain() == 1
    [sending] = await all_sendings(state)
    assert sending.status == "Failed"
    assert strict_receiver.requests == []


async def test_a_certificate_without_its_key_or_garbage_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ca: trustme.CA
) -> None:
    certificate, _key = _client_pem(ca)
    for extra in (
        {"ClientCertificate": certificate},
        {"ClientCertificate": "not a pem", "ClientKey": "nor this"},
        {"ClientCertificate": certificate, "ClientKey": _client_pem(ca)[1]},  # another key
    ):
        response = await client.put(
            "/api/v1/billing/systems/SecureSwitch",
            json={"Channel": "Http", "Url": "https://127.0.0.1:9/", **extra},
            headers=admin_headers,
        )
        assert response.status_code == 400, response.text
        assert "ClientCertificate" in response.json()["Message"]
        assert "PRIVATE" not in response.text
