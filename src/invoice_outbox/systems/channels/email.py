"""Delivery by e-mail: the document as an attachment to a short message, over SMTP.

What the receiving mailbox gets:

- Subject `<SendingType> <invoice id>` and a short plain-text body: no patient data;
- the document attached as `invoice-<invoice id>.json` (or `.xml`);
- `Message-ID` derived from the sending's idempotency key, so every attempt of a sending
  carries the same Message-ID and mailbox-side rules can drop duplicates; the key itself
  travels in `X-Idempotency-Key`.

Transport security: with `starttls` (the default) the message is only sent after a
successful STARTTLS; a server that does not offer it fails the delivery permanently
(cause `tls`), because sending health data in clear text is never the fallback.
`use_tls` connects with TLS from the start (port 465 style) and makes `starttls` moot.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.systems.channels._network import network_error, seconds
from invoice_outbox.systems.channels.base import (
    Delivered,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

__all__ = ["EmailChannel", "message_id_for"]

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_TEXT = 100


def message_id_for(idempotency_key: str, sender: str) -> str:
    """The Message-ID for every attempt of the sending with this idempotency key.

    The key is used as is when it is a valid Message-ID local part (UUIDs are); any other
    key is replaced by a digest of it, so the result is always a valid, stable header.
    The domain is the sender's, as RFC 5322 suggests, to keep IDs globally unique.
    """
    local = idempotency_key
    if not _DOT_ATOM.fullmatch(local) or len(local) > 64:
        local = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not _DOMAIN.fullmatch(domain):
        domain = "invoice-outbox.invalid"
    return f"<{local}@{domain}>"


def _server_text(message: str) -> str:
    """An SMTP reply's text fit for a reason: first line, no control characters, short."""
    line = _CONTROL.sub(" ", message.strip().splitlines()[0] if message.strip() else "").strip()
    return line if len(line) <= _MAX_TEXT else line[: _MAX_TEXT - 1] + "…"


def _valid_address(address: str) -> bool:
    _, parsed = parseaddr(address)
    return bool(parsed) and "@" in parsed and not _CONTROL.search(address)


class EmailChannel:
    """Sends each delivery as one e-mail to one recipient; see the module docstring.

    `timeout` (seconds) bounds each step of the SMTP conversation.  `username` enables
    AUTH (with `password`, empty if None).  `tls_context` replaces the default certificate
    trust.  One SMTP connection is opened per delivery: mailboxes see few messages, and a
    fresh connection cannot be left in a half-failed state by an earlier delivery.

    Configuration problems (bad addresses) do not raise here: every `deliver` then fails
    with a `PermanentDeliveryError` (cause `config`), visible on the sendings.
    """

    def __init__(
        self,
        *,
        system: str,
        host: str,
        port: int,
        sender: str,
        recipient: str,
        timeout: float,
        starttls: bool = True,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._system = system
        self._host = host
        self._port = port
        self._sender = sender
        self._recipient = recipient
        self._timeout = timeout
        self._starttls = starttls and not use_tls
        self._use_tls = use_tls
        self._username = username
        self._password = password or ""
        self._tls_context = tls_context
        self._clock: Clock = clock or SystemClock()
        self._config_error: str | None = None
        if not _valid_address(sender) or not _valid_address(recipient):
            self._config_error = (
                f"The sender or recipient address configured for {system} is not valid"
            )

    def build_message(self, delivery: Delivery) -> EmailMessage:
        """The message for `delivery`; its only patient data is inside the attachment."""
        what, invoice = delivery.sending_type, delivery.invoice_id
        subtype = delivery.content_type.partition(";")[0].strip().partition("/")[2] or "json"
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = self._recipient
        message["Subject"] = f"{what} {invoice}"
        message["Date"] = format_datetime(self._clock.now())
        message["Message-ID"] = message_id_for(delivery.idempotency_key, self._sender)
        message["X-Idempotency-Key"] = delivery.idempotency_key
        message["X-Invoice-Id"] = str(invoice)
        message["X-Sending-Type"] = what
        message["X-Attempt"] = str(delivery.attempt)
        message.set_content(
            f"{what} {invoice} is attached, sent by invoice-outbox (attempt {delivery.attempt}).\n"
            "A message with the same Message-ID is a repeat of this one and can be ignored.\n"
        )
        message.add_attachment(
            delivery.document,
            maintype="application",
            subtype=subtype,
            filename=f"invoice-{invoice}.{subtype}",
        )
        return message

    async def deliver(self, delivery: Delivery) -> Delivered:
        """Send one message; see `DeliveryChannel.deliver` for the error contract."""
        if self._config_error is not None:
            raise PermanentDeliveryError(self._config_error, cause="config")
        message = self.build_message(delivery)
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            use_tls=self._use_tls,
            start_tls=False,  # done by hand below, to refuse a server that lacks it
            tls_context=self._tls_context,
        )
        try:
            code, text = await self._converse(smtp, message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._translate(exc) from exc
        except BaseException:
            smtp.close()  # our own DeliveryErrors, cancellation, bugs: never leak the socket
            raise
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()  # the message is accepted; a clumsy goodbye changes nothing
        return Delivered(code=code, detail=f"SMTP {code} {_server_text(text)}".rstrip())

    async def _converse(self, smtp: aiosmtplib.SMTP, message: EmailMessage) -> tuple[int, str]:
        system = self._system
        await smtp.connect()
        if self._starttls:
            await smtp.ehlo()
            if not smtp.supports_extension("starttls"):
                raise PermanentDeliveryError(
                    f"{system} does not offer STARTTLS, so the message was not sent in clear "
                    "text: enable TLS on the server or change the system's TLS settings",
                    cause="tls",
                )
            await smtp.starttls()
        if self._username is not None:
            if smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()
            if not smtp.supports_extension("auth"):
                raise PermanentDeliveryError(
                    f"{system} does not offer SMTP authentication, but a username is "
                    "configured for it",
                    cause="smtp-auth",
                )
            await smtp.login(self._username, self._password)
        _, text = await smtp.send_message(
            message, sender=self._sender, recipients=[self._recipient]
        )
        return 250, text

    def _translate(self, exc: aiosmtplib.SMTPException | OSError) -> DeliveryError:
        system, after = self._system, seconds(self._timeout)
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            return RetryableDeliveryError(
                f"Timed out after {after} connecting to {system}", cause="timeout"
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return RetryableDeliveryError(
                f"Timed out after {after} waiting for {system}", cause="timeout"
            )
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            if exc.code < 500:  # e.g. 454: the server's auth backend is down for now
                return self._reply(exc.code, exc.message, "could not check our login")
            return PermanentDeliveryError(
                f"{system} rejected the login of {self._username}: SMTP {exc.code} "
                f"{_server_text(exc.message)}; check the username and password",
                cause="smtp-auth",
                code=exc.code,
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            refused = exc.recipients[0]
            return self._reply(refused.code, refused.message, f"refused {self._recipient}")
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return self._reply(exc.code, exc.message, f"refused the sender {self._sender}")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            verb = {4: "deferred the message", 5: "rejected the message"}.get(
                exc.code // 100, "answered oddly"
            )
            return self._reply(exc.code, exc.message, verb)
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            return RetryableDeliveryError(
                f"{system} closed the connection unexpectedly", cause="connection-closed"
            )
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return PermanentDeliveryError(
                f"{system} lacks an SMTP feature this message needs ({exc.message})",
                cause="config",
            )
        if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
            return network_error(exc, system, f"{self._host}:{self._port}")
        # What is left are aiosmtplib's own refusals (e.g. no common AUTH mechanism): a
        # mismatch between our settings and the server that retrying will not fix.
        return PermanentDeliveryError(
            f"The SMTP conversation with {system} failed: {_server_text(exc.message)}",
            cause="config",
        )

    def _reply(self, code: int, message: str, action: str) -> DeliveryError:
        reason = f"{self._system} {action}: SMTP {code} {_server_text(message)}".rstrip()
        if 400 <= code <= 499:
            return RetryableDeliveryError(reason, cause=f"smtp-{code}", code=code)
        if 500 <= code <= 599:
            return PermanentDeliveryError(reason, cause=f"smtp-{code}", code=code)
        # Not a reply code SMTP defines: a confused or broken server; it may recover.
        return RetryableDeliveryError(reason, cause="smtp-protocol", code=code)

    async def aclose(self) -> None:
        """Nothing to release: connections live only for one delivery."""
