"""EmailChannel against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from invoice_outbox.systems.channels.email import EmailChannel, message_id_for
from tests.receivers import SMTP_HANG, SmtpAnswer, SmtpReceiver, tls_contexts

PATIENT = "Thandi Nkosi"  # a fake patient: must never reach a reason, subject or body
SENDER = "outbox@billing.example"
RECIPIENT = "invoices@mediswitch.example"
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


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts()


@pytest.fixture
async def plain() -> AsyncIterator[SmtpReceiver]:
    """A server without STARTTLS that accepts AUTH in clear (for the 535 test only)."""
    async with SmtpReceiver(credentials=("billing", "right"), auth_require_tls=False) as smtp:
        yield smtp


@pytest.fixture
async def secure(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[SmtpReceiver]:
    async with SmtpReceiver(
        tls_context=tls[0], require_starttls=True, credentials=("billing", "right")
    ) as smtp:
        yield smtp


def channel_for(smtp: SmtpReceiver | None = None, **kwargs: Any) -> EmailChannel:
    settings: dict[str, Any] = {
        "system": "MediMail",
        "host": "127.0.0.1",
        "port": smtp.port if smtp else 1,
        "sender": SENDER,
        "recipient": RECIPIENT,
        "timeout": 2.0,
        "starttls": False,
    }
    settings.update(kwargs)
    return EmailChannel(**settings)


async def failure(channel: EmailChannel, delivery: Delivery = DELIVERY) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(delivery)
    return caught.value


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_success_sends_the_document_as_an_attachment(plain: SmtpReceiver) -> None:
    delivered = await channel_for(plain).deliver(DELIVERY)
    assert isinstance(delivered, Delivered)
    assert delivered.code == 250
    assert delivered.detail.startswith("SMTP 250")
    [mail] = plain.messages
    assert (mail.sender, mail.recipients, mail.tls) == (SENDER, (RECIPIENT,), False)
    message = mail.message
    assert message["Subject"] == f"Invoice {DELIVERY.invoice_id}"
    assert message["Message-ID"] == f"<{DELIVERY.idempotency_key}@billing.example>"
    assert message["X-Idempotency-Key"] == DELIVERY.idempotency_key
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"invoice-{DELIVERY.invoice_id}.json"
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_content() == DELIVERY.document
    body = message.get_body(("plain",))
    assert body is not None
    assert PATIENT not in body.get_content()
    assert PATIENT not in str(message["Subject"])


async def test_every_attempt_carries_the_same_message_id(plain: SmtpReceiver) -> None:
    channel = channel_for(plain)
    await channel.deliver(DELIVERY)
    await channel.deliver(dataclasses.replace(DELIVERY, attempt=2))
    ids = {mail.message["Message-ID"] for mail in plain.messages}
    assert ids == {message_id_for(DELIVERY.idempotency_key, SENDER)}
    assert [m.message["X-Attempt"] for m in plain.messages] == ["1", "2"]


async def test_starttls_and_login(
    secure: SmtpReceiver, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    channel = channel_for(
        secure, starttls=True, tls_context=tls[1], username="billing", password="right"
    )
    assert (await channel.deliver(DELIVERY)).code == 250
    [mail] = secure.messages
    assert (mail.tls, mail.login) == (True, "billing")
    assert mail.message.get_content_type() == "multipart/mixed"


async def test_a_server_without_starttls_gets_nothing_in_clear(plain: SmtpReceiver) -> None:
    error = await failure(channel_for(plain, starttls=True))
    assert isinstance(error, PermanentDeliveryError)
    assert error.cause == "tls"
    assert error.reason.startswith("MediMail does not offer STARTTLS")
    assert plain.messages == []


async def test_an_untrusted_certificate_on_starttls_is_permanent(secure: SmtpReceiver) -> None:
    error = await failure(channel_for(secure, starttls=True, tls_context=tls_contexts()[1]))
    assert isinstance(error, PermanentDeliveryError)
    assert error.cause == "tls"
    assert "The TLS certificate of MediMail" in error.reason
    assert secure.messages == []


async def test_451_is_retryable_and_the_next_attempt_goes_through(plain: SmtpReceiver) -> None:
    plain.script(SmtpAnswer(data="451 4.3.0 Mailbox busy, try again later"))
    channel = channel_for(plain)
    error = await failure(channel)
    assert isinstance(error, RetryableDeliveryError)
    assert (error.cause, error.code) == ("smtp-451", 451)
    assert (
        error.reason
        == "MediMail deferred the message: SMTP 451 4.3.0 Mailbox busy, try again later"
    )
    assert plain.messages == []
    assert (await channel.deliver(DELIVERY)).code == 250


async def test_550_is_permanent(plain: SmtpReceiver) -> None:
    plain.script(SmtpAnswer(rcpt="550 5.1.1 No such mailbox"))
    error = await failure(channel_for(plain))
    assert isinstance(error, PermanentDeliveryError)
    assert (error.cause, error.code) == ("smtp-550", 550)
    assert error.reason == f"MediMail refused {RECIPIENT}: SMTP 550 5.1.1 No such mailbox"


async def test_a_refused_sender_is_reported_as_such(plain: SmtpReceiver) -> None:
    plain.script(SmtpAnswer(mail="553 5.7.1 Sender not allowed"))
    error = await failure(channel_for(plain))
    assert (type(error), error.cause) == (PermanentDeliveryError, "smtp-553")
    assert f"refused the sender {SENDER}" in error.reason


async def test_535_bad_credentials_are_permanent(plain: SmtpReceiver) -> None:
    error = await failure(channel_for(plain, username="billing", password="wrong"))
    assert isinstance(error, PermanentDeliveryError)
    assert (error.cause, error.code) == ("smtp-auth", 535)
    assert error.reason.startswith("MediMail rejected the login of billing: SMTP 535")
    assert "wrong" not in error.reason
    assert plain.messages == []


async def test_a_username_for_a_server_without_auth_is_permanent(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with SmtpReceiver() as smtp:  # AUTH only over TLS, and no TLS offered
        error = await failure(channel_for(smtp, username="billing", password="right"))
    assert (type(error), error.cause) == (PermanentDeliveryError, "smtp-auth")
    assert "does not offer SMTP authentication" in error.reason


async def test_connection_refused_is_retryable(closed_port: int) -> None:
    error = await failure(channel_for(port=closed_port))
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "connection-refused"
    assert error.reason == f"MediMail refused the connection (127.0.0.1:{closed_port})"


async def test_a_server_that_never_greets_times_out() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        error = await failure(channel_for(port=port, timeout=0.2))
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "timeout"
    assert error.reason == "Timed out after 0.2 s connecting to MediMail"


async def test_a_server_that_stops_answering_mid_transaction_times_out(
    plain: SmtpReceiver,
) -> None:
    plain.script(SmtpAnswer(data=SMTP_HANG))
    error = await failure(channel_for(plain, timeout=0.2))
    assert isinstance(error, RetryableDeliveryError)
    assert error.cause == "timeout"
    assert error.reason == "Timed out after 0.2 s waiting for MediMail"
    assert plain.messages == []


async def test_reasons_keep_only_a_short_first_line_of_the_reply(plain: SmtpReceiver) -> None:
    plain.script(SmtpAnswer(data="554 5.7.1 " + "x" * 300))
    error = await failure(channel_for(plain))
    assert error.cause == "smtp-554"
    assert len(error.reason) < 160
    for text in (error.reason, repr(error)):
        assert PATIENT not in text
        assert "1250" not in text


async def test_bad_addresses_fail_every_delivery_as_config(plain: SmtpReceiver) -> None:
    error = await failure(channel_for(plain, recipient="not an address"))
    assert (type(error), error.cause) == (PermanentDeliveryError, "config")
    assert plain.messages == []
