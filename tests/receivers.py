"""Real receivers on loopback for tests: an HTTP server and an SMTP server that record what
they get and answer from a script.

HTTP, in the test's event loop::

    async with HttpReceiver() as receiver:
        receiver.script(Reply(503, {"Retry-After": "120"}), Reply(201))  # then the default
        ... POST to receiver.url ...
        assert receiver.requests[0].header("Idempotency-Key") == key

HTTP for code in another process or loop (a server and worker under test)::

    with ThreadedHttpReceiver() as receiver:   # its own loop in a daemon thread
        ... start the subprocess pointing at receiver.url ...
        requests = receiver.wait_for_requests(3, timeout=10)

SMTP (aiosmtpd's threaded Controller; usable with `with` or `async with`)::

    async with SmtpReceiver(tls_context=server_ctx, credentials=("user", "pw")) as smtp:
        smtp.script(SmtpAnswer(data="451 4.3.0 Try again later"))
        ... send to smtp.host, smtp.port ...
        assert smtp.messages[0].message["Message-ID"] == ...

Slow, throttling and choosy receivers (lanes)::

    receiver.respond_with(per_invoice({poison_id: Reply(500)}, Reply(200)))  # one refused
    receiver.respond_with(Reply(200, delay=0.2))                            # slow
    receiver.max_in_progress   # the most requests it was answering at once (in-flight limits)

Scripts are consumed one entry per request (HTTP) or per mail transaction (SMTP); when
the script is empty the default answer is used.  Everything is thread-safe.  Replies that
delay or hang do so on the server side only: tests wait on recorded events
(`wait_for_requests`), never on sleeps.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import http
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "SMTP_HANG",
    "HttpReceiver",
    "ReceivedMail",
    "ReceivedRequest",
    "Reply",
    "SmtpAnswer",
    "SmtpReceiver",
    "ThreadedHttpReceiver",
    "per_invoice",
    "tls_contexts",
]


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh throwaway CA: (server context holding a certificate for 127.0.0.1 and
    localhost, client context trusting only that CA).  Pass the first to a receiver."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return server, client


# --------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted HTTP answer.  `delay`: seconds before answering; `hang`: never answer
    (until the receiver stops); `close`: drop the connection without answering."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    hang: bool = False
    close: bool = False


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as received; `headers` keeps order and repeats, names as sent."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


Responder = Callable[[ReceivedRequest], Reply]


def per_invoice(special: Mapping[str, Reply], default: Reply = Reply(200)) -> Responder:
    """Answer by the request's ``X-Invoice-Id``: `special` for the invoices it names (a
    receiver choking on one invoice), `default` for every other."""

    def answer(request: ReceivedRequest) -> Reply:
        return special.get(request.header("X-Invoice-Id") or "", default)

    return answer


class _Journal:
    """Thread-safe record of what arrived, plus the script that decides the answers."""

    def __init__(self, default: Any) -> None:
        self._cond = threading.Condition()
        self._script: deque[Any] = deque()
        self.default = default
        self.items: list[Any] = []

    def script(self, *answers: Any) -> None:
        with self._cond:
            self._script.extend(answers)

    def next_answer(self) -> Any:
        with self._cond:
            return self._script.popleft() if self._script else None

    def record(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[Any]:
        with self._cond:
            return list(self.items)

    def wait_for(self, count: int, timeout: float) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} arrivals within {timeout} s, got {len(self.items)}"
                )
            return list(self.items)


async def _read_request(reader: asyncio.StreamReader) -> ReceivedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the (keep-alive) connection
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    )
    request = ReceivedRequest(method, target, headers, b"")
    if (request.header("Transfer-Encoding") or "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers from our clients
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(request.header("Content-Length") or 0))
    return ReceivedRequest(method, target, headers, body)


def _encode(reply: Reply, keep_alive: bool) -> bytes:
    try:
        phrase = http.HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {reply.status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in reply.headers.items()]
    lines += [
        f"Content-Length: {len(reply.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


class HttpReceiver:
    """An HTTP/1.1 server on 127.0.0.1 (ephemeral port) in the running event loop.

    `default` answers every request the script does not cover: a `Reply`, or a function
    of the request.  `tls_context` (a server context) makes it HTTPS.  `host` is the address
    to listen on: loopback, or an address the test made itself (a veth end of its own).
    """

    def __init__(
        self,
        *,
        default: Reply | Responder = Reply(200),
        tls_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._journal = _Journal(default)
        self._tls = tls_context
        self.host = host
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # Responders run here, so one that blocks (a gate) holds only its own request.
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="responder")
        self.port = 0
        #: TCP connections accepted so far (how well clients keep connections alive).
        self.connections = 0
        #: Requests being answered right now, and the most there ever were at once.
        self.in_progress = 0
        self.max_in_progress = 0

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:40123/`; any path is accepted."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}/"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first (a copy)."""
        return self._journal.snapshot()

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order, then with the default."""
        self._journal.script(*replies)

    def respond_with(self, default: Reply | Responder) -> None:
        """Replace the default answer."""
        self._journal.default = default

    async def wait_for_requests(self, count: int, within: float = 5.0) -> list[ReceivedRequest]:
        """Wait until `count` requests have arrived (TimeoutError after `within` seconds);
        return them all.  Waits in a thread, so this loop keeps serving meanwhile."""
        return await asyncio.to_thread(self._journal.wait_for, count, within)

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="responder")
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, release hanging replies and close every connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            # After the connections: from Python 3.12 on this waits for them to close.
            await self._server.wait_closed()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while request := await _read_request(reader):
                self.in_progress += 1
                self.max_in_progress = max(self.max_in_progress, self.in_progress)
                try:
                    self._journal.record(request)
                    reply = self._journal.next_answer() or self._journal.default
                    if not isinstance(reply, Reply):
                        # A responder may block (a gate): keep this loop serving meanwhile.
                        loop = asyncio.get_running_loop()
                        reply = await loop.run_in_executor(self._executor, reply, request)
                    if reply.close:
                        break
                    if reply.hang or reply.delay:
                        delay = None if reply.hang else reply.delay
                        try:
                            await asyncio.wait_for(self._stopping.wait(), delay)
                            break  # stopping: the hang ends without an answer
                        except TimeoutError:
                            pass
                    keep_alive = (request.header("Connection") or "").lower() != "close"
                    writer.write(_encode(reply, keep_alive))
                    await writer.drain()
                finally:
                    self.in_progress -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away; nothing to answer
        except (ValueError, asyncio.LimitOverrunError):
            # Not HTTP as our clients speak it: answer like a strict server would.
            writer.write(_encode(Reply(400), keep_alive=False))
        finally:
            writer.close()
            self._tasks.discard(task)


class ThreadedHttpReceiver:
    """An `HttpReceiver` running its own event loop in a daemon thread; `with` it.

    For tests whose client is another process or another event loop.  Same `url`,
    `requests`, `script`, `respond_with`; `wait_for_requests` blocks the caller.
    """

    def __init__(
        self,
        *,
        default: Reply | Responder = Reply(200),
        tls_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "default": default,
            "tls_context": tls_context,
            "host": host,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._receiver: HttpReceiver | None = None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    @property
    def receiver(self) -> HttpReceiver:
        assert self._receiver is not None, "ThreadedHttpReceiver is not started"
        return self._receiver

    @property
    def url(self) -> str:
        return self.receiver.url

    @property
    def port(self) -> int:
        return self.receiver.port

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.receiver.requests

    def script(self, *replies: Reply) -> None:
        self.receiver.script(*replies)

    def respond_with(self, default: Reply | Responder) -> None:
        self.receiver.respond_with(default)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        return self.receiver._journal.wait_for(count, timeout)

    def start(self) -> None:
        self._thread.start()

        async def make() -> HttpReceiver:
            receiver = HttpReceiver(**self._kwargs)  # its Event belongs to this loop
            await receiver.start()
            return receiver

        self._receiver = self._call(make())

    def stop(self) -> None:
        if self._receiver is not None:
            self._call(self._receiver.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------- SMTP
@dataclass(frozen=True, slots=True)
class SmtpAnswer:
    """How one mail transaction is answered: a full reply line at MAIL, RCPT or DATA
    (e.g. `"451 4.3.0 Try again later"`); None accepts that step; `SMTP_HANG` never
    answers it (until the receiver stops)."""

    mail: str | None = None
    rcpt: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One accepted message: envelope, raw content, and how the session was secured."""

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


#: An `SmtpAnswer` step that is never answered: for client timeouts.
SMTP_HANG = "hang"


async def _scripted(reply: str | None) -> str | None:
    if reply == SMTP_HANG:
        # Never resolves; Controller.stop cancels it with every other task of its loop.
        await asyncio.get_running_loop().create_future()
    return reply


class _Handler:
    def __init__(self, journal: _Journal) -> None:
        self.journal = journal

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        answer = self.journal.next_answer() or SmtpAnswer()
        envelope.answer = answer  # type: ignore[attr-defined]  # one answer per transaction
        if reply := await _scripted(answer.mail):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        answer: SmtpAnswer = envelope.answer  # type: ignore[attr-defined]
        if reply := await _scripted(answer.rcpt):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer: SmtpAnswer = envelope.answer  # type: ignore[attr-defined]
        if reply := await _scripted(answer.data):
            return reply
        login = session.auth_data.login.decode() if session.auth_data else None
        content = envelope.original_content or b""
        mail = ReceivedMail(
            envelope.mail_from or "",
            tuple(envelope.rcpt_tos),
            content,
            session.ssl is not None,
            login,
        )
        self.journal.record(mail)
        return "250 2.0.0 Message accepted"


class _EphemeralController(Controller):
    """aiosmtpd's Controller, listening on port 0 and learning the port the OS chose."""

    def _trigger_server(self) -> None:
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 (ephemeral port), on aiosmtpd's threaded Controller.

    `tls_context` (a server context) makes it offer STARTTLS; `require_starttls` refuses
    mail before it.  `credentials` (user, password) accepts that login and answers 535 to
    any other; AUTH is offered only over TLS unless `auth_require_tls` is False.
    """

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self._journal = _Journal(SmtpAnswer())
        kwargs: dict[str, Any] = {"auth_require_tls": auth_require_tls}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        if credentials is not None:
            kwargs["authenticator"] = self._authenticator(credentials)
        self._controller = _EphemeralController(
            _Handler(self._journal),
            hostname="127.0.0.1",
            port=0,
            server_hostname="receiver.test",
            **kwargs,
        )
        self.host = "127.0.0.1"

    @staticmethod
    def _authenticator(credentials: tuple[str, str]) -> Callable[..., AuthResult]:
        def check(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (data.login.decode(), data.password.decode()) == credentials
            )
            return AuthResult(success=ok, handled=False, auth_data=data)

        return check

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[ReceivedMail]:
        """Every accepted message so far, oldest first (a copy)."""
        return self._journal.snapshot()

    def script(self, *answers: SmtpAnswer) -> None:
        """Answer the next mail transactions with `answers`, in order, then accept."""
        self._journal.script(*answers)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until `count` messages were accepted (TimeoutError otherwise)."""
        return self._journal.wait_for(count, timeout)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)


@contextmanager
def gated(timeout: float = 60.0) -> Iterator[tuple[ThreadedHttpReceiver, threading.Event]]:
    """A receiver that holds every answer (200) until the gate opens (or `timeout` passes)."""
    gate = threading.Event()

    def answer(_request: ReceivedRequest) -> Reply:
        gate.wait(timeout)
        return Reply(200)

    with ThreadedHttpReceiver(default=answer) as receiver:
        try:
            yield receiver, gate
        finally:
            gate.set()
