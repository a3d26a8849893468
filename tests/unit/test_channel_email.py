"""EmailChannel without a server: the message it builds and how SMTP failures translate."""

from __future__ import annotations

import dataclasses
import ssl
import uuid
from datetime import UTC, datetime

import aiosmtplib
import pytest

from invoice_outbox.clock import FrozenClock
from invoice_outbox.systems.channels.base import (
    Delivery,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from invoice_outbox.systems.channels.email import EmailChannel, message_id_for

DELIVERY = Delivery(
    sending_id=uuid.UUID("5b0c8e9e-1d2f-4c1a-9a43-0f6f2d8b7a10"),
    idempotency_key="5b0c8e9e-1d2f-4c1a-9a43-0f6f2d8b7a10",
    practice_id=uuid.UUID("1c2d9508-589f-4ac3-8898-16c402da5ea8"),
    invoice_id=uuid.UUID("0e7b6a51-77d3-4b5e-8a52-3f1d2c9e4b61"),
    sending_type="Cancellation",
    attempt=3,
    document=b"<Invoice><Patient>Sipho Dlamini</Patient></Invoice>",
    content_type="application/xml",
)
CHANNEL = EmailChannel(
    system="MediMail",
    host="smtp.example",
    port=587,
    sender="Outbox <outbox@billing.example>",
    recipient="invoices@mediswitch.example",
    timeout=30,
    username="billing",
    clock=FrozenClock(datetime(2026, 2, 5, 16, 6, 25, tzinfo=UTC)),
)


@pytest.mark.parametrize(
    ("key", "sender", "expected"),
    [
        ("5b0c8e9e-1d2f", "a@billing.example", "<5b0c8e9e-1d2f@billing.example>"),
        ("abc", "Outbox <a@b.example>", "<abc@b.example>"),
        ("k", "no-domain", "<k@invoice-outbox.invalid>"),
        ("k", "a@[127.0.0.1]", "<k@invoice-outbox.invalid>"),
    ],
)
def test_message_id_uses_the_key_and_the_sender_domain(
    key: str, sender: str, expected: str
) -> None:
    assert message_id_for(key, sender) == expected


@pytest.mark.parametrize("key", ["has space", 'a"quote', "x" * 65, "dot..dot", "ünï"])
def test_keys_unfit_for_a_message_id_are_hashed_stably(key: str) -> None:
    got = message_id_for(key, "a@b.example")
    assert got == message_id_for(key, "a@b.example")
    assert got != message_id_for(key + "!", "a@b.example")
    local, _, domain = got.strip("<>").partition("@")
    assert domain == "b.example"
    assert len(local) == 40
    assert set(local) <= set("0123456789abcdef")


def test_message_carries_the_document_only_as_an_attachment() -> None:
    message = CHANNEL.build_message(DELIVERY)
    assert message["Subject"] == f"Cancellation {DELIVERY.invoice_id}"
    assert message["Date"] == "Thu, 05 Feb 2026 16:06:25 +0000"
    assert message["X-Attempt"] == "3"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"invoice-{DELIVERY.invoice_id}.xml"
    assert attachment.get_content_type() == "application/xml"
    body = message.get_body(("plain",))
    assert body is not None
    assert "Sipho" not in body.get_content()
    assert "Sipho" not in "".join(f"{k}: {v}" for k, v in message.items())


def test_message_id_does_not_change_between_attempts() -> None:
    again = CHANNEL.build_message(dataclasses.replace(DELIVERY, attempt=4))
    assert again["Message-ID"] == CHANNEL.build_message(DELIVERY)["Message-ID"]


def cert_error() -> aiosmtplib.SMTPConnectError:
    exc = aiosmtplib.SMTPConnectError("Error connecting")
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed")
    inner.verify_message = "certificate has expired"
    exc.__cause__ = inner
    return exc


@pytest.mark.parametrize(
    ("exc", "kind", "cause", "reason"),
    [
        (
            aiosmtplib.SMTPConnectResponseError(421, "4.3.2 Service shutting down"),
            RetryableDeliveryError,
            "smtp-421",
            "MediMail deferred the message: SMTP 421 4.3.2 Service shutting down",
        ),
        (
            aiosmtplib.SMTPConnectResponseError(554, "5.7.1 No service for you"),
            PermanentDeliveryError,
            "smtp-554",
            "MediMail rejected the message: SMTP 554 5.7.1 No service for you",
        ),
        (
            aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary authentication failure"),
            RetryableDeliveryError,
            "smtp-454",
            "MediMail could not check our login: SMTP 454 4.7.0 Temporary authentication failure",
        ),
        (
            aiosmtplib.SMTPAuthenticationError(534, "5.7.9 Please log in with your web browser"),
            PermanentDeliveryError,
            "smtp-auth",
            "MediMail rejected the login of billing: SMTP 534 5.7.9 Please log in with your web "
            "browser; check the username and password",
        ),
        (
            aiosmtplib.SMTPServerDisconnected("Connection lost"),
            RetryableDeliveryError,
            "connection-closed",
            "MediMail closed the connection unexpectedly",
        ),
        (
            aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
            RetryableDeliveryError,
            "timeout",
            "Timed out after 30 s waiting for MediMail",
        ),
        (
            aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"),
            PermanentDeliveryError,
            "config",
            "MediMail lacks an SMTP feature this message needs (SMTPUTF8 is not supported by "
            "this server)",
        ),
        (
            aiosmtplib.SMTPException("No suitable authentication method found."),
            PermanentDeliveryError,
            "config",
            "The SMTP conversation with MediMail failed: No suitable authentication method found.",
        ),
        (
            cert_error(),
            PermanentDeliveryError,
            "tls",
            "The TLS certificate of MediMail (smtp.example:587) is not trusted: certificate has "
            "expired",
        ),
        (
            aiosmtplib.SMTPResponseException(999, "what\r\nmulti-line\x07"),
            RetryableDeliveryError,
            "smtp-protocol",
            "MediMail answered oddly: SMTP 999 what",
        ),
    ],
)
def test_smtp_failures_translate(
    exc: aiosmtplib.SMTPException, kind: type, cause: str, reason: str
) -> None:
    error = CHANNEL._translate(exc)
    assert type(error) is kind
    assert (error.cause, error.reason) == (cause, reason)


async def test_bad_sender_fails_before_connecting() -> None:
    channel = EmailChannel(
        system="MediMail",
        host="smtp.example",
        port=1,
        sender="x\r\nBcc: a@b",
        recipient="a@b.example",
        timeout=1,
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.deliver(DELIVERY)
    assert caught.value.cause == "config"
    assert caught.value.reason == (
        "The sender or recipient address configured for MediMail is not valid"
    )
