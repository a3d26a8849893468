"""HttpChannel against a real HTTP server on loopback: what is sent, how answers are read."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from invoice_outbox import __version__
from invoice_outbox.clock import FrozenClock
from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from invoice_outbox.systems.channels.http import DRAIN_LIMIT, HttpChannel, new_http_client
from tests.receivers import HttpReceiver, Reply, ThreadedHttpReceiver, tls_contexts

NOW = datetime(2026, 2, 5, 16, 6, 25, tzinfo=UTC)
PATIENT = "Thandi Nkosi"  # a fake patient: must never reach a reason
DELIVERY = Delivery(
    sending_id=uuid.UUID("5b0c8e9e-1d2f-4c1a-9a43-0f6f2d8b7a10"),
    idempotency_key="5b0c8e9e-1d2f-4c1a-9a43-0f6f2d8b7a10",
    practice_id=uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8"),
    invoice_id=uuid.UUID("0e7b6a51-77d3-4b5e-8a52-3f1d2c9e4b61"),
    sending_type="Invoice",
    attempt=1,
    document=f'{{"Patient": "{PATIENT}", "Total": 1250.00}}'.encode(),
    content_type="application/json",
)


@pytest.fixture
async def channel(receiver: HttpReceiver) -> AsyncIterator[HttpChannel]:
    made = HttpChannel(
        system="MediSwitch",
        url=receiver.url + "invoices",
        timeout=0.2,
        auth_header="Authorization",
        auth_value="Bearer s3cret",
        clock=FrozenClock(NOW),
    )
    yield made
    await made.aclose()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def failure(channel: HttpChannel, delivery: Delivery = DELIVERY) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(delivery)
    return caught.value


async def test_success_posts_the_document_with_the_contract_headers(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(201, body=b'{"Id": 7}'))
    assert await channel.deliver(DELIVERY) == Delivered(code=201, detail="HTTP 201 Created")
    [request] = receiver.requests
    assert (request.method, request.target, request.body) == (
        "POST",
        "/invoices",
        DELIVERY.document,
    )
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.header("Idempotency-Key") == DELIVERY.idempotency_key
    assert request.header("X-Invoice-Id") == str(DELIVERY.invoice_id)
    assert request.header("X-Sending-Type") == "Invoice"
    assert request.header("X-Attempt") == "1"
    assert request.header("User-Agent") == f"invoice-outbox/{__version__}"
    assert request.header("Authorization") == "Bearer s3cret"


async def test_xml_documents_carry_their_content_type(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    xml = dataclasses.replace(DELIVERY, document=b"<Invoice/>", content_type="application/xml")
    await channel.deliver(xml)
    assert receiver.requests[0].header("Content-Type") == "application/xml; charset=utf-8"


async def test_idempotency_key_is_the_same_on_every_attempt(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    await channel.deliver(DELIVERY)
    await channel.deliver(DELIVERY)
    await channel.deliver(dataclasses.replace(DELIVERY, attempt=2))
    keys = [r.header("Idempotency-Key") for r in receiver.requests]
    assert keys == [DELIVERY.idempotency_key] * 3
    assert [r.header("X-Attempt") for r in receiver.requests] == ["1", "1", "2"]


async def test_503_with_retry_after_seconds_is_retryable(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(503, {"Retry-After": "120"}))
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert (error.cause, error.code, error.retry_after) == ("http-503", 503, timedelta(minutes=2))
    assert error.reason == (
        "MediSwitch answered HTTP 503 Service Unavailable and asked to retry in 120 s"
    )


async def test_retry_after_as_an_http_date_is_read_against_the_clock(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    receiver.script(Reply(429, {"Retry-After": when}))
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert (error.cause, error.retry_after) == ("http-429", timedelta(seconds=90))


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (408, "Request Timeout"),
        (429, "Too Many Requests"),
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (504, "Gateway Timeout"),
    ],
)
async def test_busy_or_broken_receivers_are_retried(
    receiver: HttpReceiver, channel: HttpChannel, status: int, phrase: str
) -> None:
    receiver.script(Reply(status, {"Retry-After": "soon, maybe"}))  # garbage is ignored
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert (error.cause, error.code, error.retry_after) == (f"http-{status}", status, None)
    assert error.reason == f"MediSwitch answered HTTP {status} {phrase}"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (422, "MediSwitch rejected the invoice: HTTP 422 Unprocessable Entity"),
        (400, "MediSwitch rejected the invoice: HTTP 400 Bad Request"),
        (409, "MediSwitch rejected the invoice: HTTP 409 Conflict"),
        (401, "MediSwitch refused our credentials: HTTP 401 Unauthorized; check its auth"),
        (404, "MediSwitch answered HTTP 404 Not Found: check the URL configured for it"),
    ],
)
async def test_other_client_errors_are_permanent(
    receiver: HttpReceiver, channel: HttpChannel, status: int, reason: str
) -> None:
    receiver.script(Reply(status, {"Retry-After": "60"}))
    error = await failure(channel)
    assert isinstance(error, PermanentDeliveryError)
    assert (error.cause, error.code) == (f"http-{status}", status)
    assert error.reason.startswith(reason)


async def test_cancellations_are_named_in_the_reason(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(422))
    error = await failure(channel, dataclasses.replace(DELIVERY, sending_type="Cancellation"))
    assert error.reason == "MediSwitch rejected the cancellation: HTTP 422 Unprocessable Entity"


async def test_redirects_are_permanent_and_not_followed(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(301, {"Location": receiver.url + "elsewhere"}))
    error = await failure(channel)
    assert isinstance(error, PermanentDeliveryError)
    assert (error.cause, error.code) == ("http-301", 301)
    assert "HTTP 301 Moved Permanently" in error.reason
    assert "redirects are not followed" in error.reason
    assert [r.target for r in receiver.requests] == ["/invoices"]


async def test_a_hanging_receiver_times_out(receiver: HttpReceiver, channel: HttpChannel) -> None:
    receiver.script(Reply(hang=True))
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "timeout"
    assert error.reason == "Timed out after 0.2 s waiting for MediSwitch"
    assert len(receiver.requests) == 1  # it did arrive; the answer never came


async def test_a_dropped_connection_is_retryable(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(close=True))
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "connection-closed"
    assert error.reason == "MediSwitch closed the connection without a valid HTTP answer"


async def test_connections_are_kept_alive_and_bodies_never_reach_the_outcome(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.respond_with(Reply(200, {"Content-Type": "text/plain"}, b"thanks " * 100))
    for _ in range(5):
        assert (await channel.deliver(DELIVERY)).detail == "HTTP 200 OK"
    assert (len(receiver.requests), receiver.connections) == (5, 1)


async def test_a_long_answer_is_not_read_to_its_end_and_its_connection_is_dropped(
    receiver: HttpReceiver, channel: HttpChannel
) -> None:
    receiver.script(Reply(200, body=b"x" * (DRAIN_LIMIT * 4)))
    assert (await channel.deliver(DELIVERY)).code == 200
    assert (await channel.deliver(DELIVERY)).code == 200
    assert (len(receiver.requests), receiver.connections) == (2, 2)


# 199 is informational: the final answer never follows, so the wait times out (retryable).
@pytest.mark.parametrize(("status", "kind"), [(299, None), (600, "permanent"), (199, "retryable")])
async def test_unusual_statuses(
    receiver: HttpReceiver, channel: HttpChannel, status: int, kind: str | None
) -> None:
    receiver.script(Reply(status))
    if kind is None:
        assert (await channel.deliver(DELIVERY)).detail == "HTTP 299"
    else:
        assert (await failure(channel)).kind == kind


async def test_a_shared_client_is_not_closed_but_an_owned_one_is(receiver: HttpReceiver) -> None:
    async with new_http_client() as client:
        borrowed = HttpChannel(system="A", url=receiver.url, timeout=5, client=client)
        await borrowed.aclose()
        assert not client.closed
        assert (await borrowed.deliver(DELIVERY)).code == 200
    owned = HttpChannel(system="A", url=receiver.url, timeout=5)
    assert (await owned.deliver(DELIVERY)).code == 200
    session = owned._client
    await owned.aclose()
    assert session is not None
    assert session.closed


async def test_connection_refused_is_retryable(closed_port: int) -> None:
    channel = HttpChannel(system="MediSwitch", url=f"http://127.0.0.1:{closed_port}/", timeout=2)
    try:
        error = await failure(channel)
    finally:
        await channel.aclose()
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "connection-refused"
    assert error.reason == "MediSwitch refused the connection (127.0.0.1)"


@pytest.mark.parametrize("status", [400, 422, 500, 503])
async def test_reasons_never_carry_the_response_body_nor_the_document(
    receiver: HttpReceiver, channel: HttpChannel, status: int
) -> None:
    body = f'{{"error": "invalid ID number for patient {PATIENT}"}}'.encode()
    receiver.script(Reply(status, {"Content-Type": "application/json"}, body))
    error = await failure(channel)
    for text in (error.reason, str(error), repr(error)):
        assert PATIENT not in text
        assert "invalid ID number" not in text
        assert "1250" not in text
    assert "s3cret" not in error.reason


async def test_https_with_a_trusted_certificate_delivers() -> None:
    server_tls, client_tls = tls_contexts()
    async with HttpReceiver(tls_context=server_tls) as receiver:
        channel = HttpChannel(
            system="MediSwitch", url=receiver.url, timeout=2, tls_context=client_tls
        )
        try:
            assert (await channel.deliver(DELIVERY)).code == 200
        finally:
            await channel.aclose()
        assert receiver.requests[0].body == DELIVERY.document


async def test_an_untrusted_certificate_is_a_permanent_tls_error() -> None:
    server_tls, _ = tls_contexts()
    other_ca_client = tls_contexts()[1]  # trusts a different CA
    async with HttpReceiver(tls_context=server_tls) as receiver:
        channel = HttpChannel(
            system="MediSwitch", url=receiver.url, timeout=2, tls_context=other_ca_client
        )
        try:
            error = await failure(channel)
        finally:
            await channel.aclose()
        assert receiver.requests == []
    assert isinstance(error, PermanentDeliveryError)
    assert error.cause == "tls"
    assert error.reason.startswith("The TLS certificate of MediSwitch (127.0.0.1) is not trusted")


def test_the_test_document_really_holds_the_patient_name() -> None:
    # Guards the privacy assertions above against a vacuous pass.
    assert PATIENT.encode() in DELIVERY.document


# The receivers themselves: the worker and end-to-end tests lean on these behaviours.


async def test_threaded_receiver_serves_another_event_loop() -> None:
    with ThreadedHttpReceiver(default=Reply(202)) as receiver:
        receiver.script(Reply(503), Reply(hang=True))
        channel = HttpChannel(system="MediSwitch", url=receiver.url, timeout=0.2)
        try:
            first = await failure(channel)
            second = await failure(channel)
            delivered = await channel.deliver(DELIVERY)
        finally:
            await channel.aclose()
        requests = receiver.wait_for_requests(3, timeout=1)
    assert (first.cause, second.cause, delivered.code) == ("http-503", "timeout", 202)
    assert [r.body for r in requests] == [DELIVERY.document] * 3


async def test_receiver_answers_from_a_responder_and_reads_chunked_bodies(
    receiver: HttpReceiver,
) -> None:
    receiver.respond_with(lambda request: Reply(200 if request.body == b"abcdef" else 400))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    async with httpx.AsyncClient() as client:
        response = await client.post(receiver.url, content=chunks())
    [request] = await receiver.wait_for_requests(1)
    assert request.header("Transfer-Encoding") == "chunked"
    assert (response.status_code, request.body) == (200, b"abcdef")


async def test_receiver_answers_garbage_with_400(receiver: HttpReceiver) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    writer.write(b"NONSENSE\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert receiver.requests == []
