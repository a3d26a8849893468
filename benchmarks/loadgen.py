"""The load client: asyncio + raw HTTP/1.1 over keep-alive connections, one per worker.

Every contender is driven by this same client.  It is deliberately small and cheap, because it
competes for the same two cores as the server and PostgreSQL: responses are parsed by an
incremental state machine (status line, ``Content-Length`` or ``chunked`` framing) that counts
body bytes without copying them unless a caller asks for the body.  No HTTP library, no TLS,
no decompression.

A *run* issues a fixed number of requests from a fixed number of workers (the concurrency) and
stops issuing early if a time limit passes; a request's latency is from writing its first byte
to receiving its last one.  Connections are opened (and warmed) before the clock starts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

REQUEST_TIMEOUT_S = 300.0

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _DONE = range(7)


class ProtocolError(Exception):
    """The server answered something this small parser does not accept."""


class _ResponseParser:
    """One HTTP/1.1 response, fed as it arrives."""

    def __init__(self, keep_body: bool) -> None:
        self.state = _HEAD
        self.status = 0
        self.close = False
        self.body_bytes = 0
        self.parts: list[bytes] | None = [] if keep_body else None
        self._remaining = 0
        self._pending = b""

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0]!r}")
        self.status = int(rest[:3])
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self.close = b"close" in value.lower()
        if chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self._remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            raise ProtocolError("response has neither Content-Length nor chunked framing")

    def _take(self, data: bytes, pos: int) -> int:
        take = min(self._remaining, len(data) - pos)
        if self.parts is not None:
            self.parts.append(data[pos : pos + take])
        self.body_bytes += take
        self._remaining -= take
        return pos + take

    def feed(self, data: bytes) -> bool:
        """Consume `data`; True once the whole response has arrived."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, end = 0, len(data)
        while pos < end and self.state != _DONE:
            state = self.state
            if state in (_LENGTH, _CHUNK_DATA):
                pos = self._take(data, pos)
                if not self._remaining:
                    self.state = _DONE if state == _LENGTH else _CHUNK_CRLF
            elif state == _CHUNK_SIZE:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    break
                size = int(data[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                self._remaining = size
                self.state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_CRLF:
                if end - pos < 2:
                    break
                pos += 2
                self.state = _CHUNK_SIZE
            elif state == _HEAD:
                head_end = data.find(b"\r\n\r\n", pos)
                if head_end < 0:
                    break
                self._head(data[pos:head_end])
                pos = head_end + 4
            else:  # _TRAILER: we send no TE header, so only the final empty line is expected
                if end - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunked trailers are not supported")
                pos += 2
                self.state = _DONE
        if self.state == _DONE:
            if pos != end:
                raise ProtocolError("bytes after the end of the response")
            return True
        self._pending = data[pos:]
        return False


@dataclass(slots=True)
class Response:
    """What a request got back."""

    status: int
    body_bytes: int
    body: bytes | None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser: _ResponseParser | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            return
        try:
            complete = parser.feed(data)
        except (ProtocolError, ValueError) as exc:
            waiter.set_exception(exc)
            return
        if complete:
            if parser.close:
                self.close()
            body = b"".join(parser.parts) if parser.parts is not None else None
            waiter.set_result(Response(parser.status, parser.body_bytes, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("connection closed mid-response"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes, keep_body: bool = False) -> Response:
        assert self.transport is not None
        self._parser = _ResponseParser(keep_body)
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter


async def connect(host: str, port: int) -> _Connection:
    """A new keep-alive connection."""
    _, protocol = await asyncio.get_running_loop().create_connection(_Connection, host, port)
    return protocol


def get_request(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    """The bytes of one HTTP/1.1 GET (keep-alive is HTTP/1.1's default)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(slots=True)
class RunResult:
    """One run: how many requests completed, in how long, and their latencies (seconds)."""

    concurrency: int
    planned: int
    completed: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    response_bytes: int = 0

    @property
    def rps(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds (NaN when none)."""
        if not self.latencies_s:
            return math.nan
        ordered = sorted(self.latencies_s)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000


#: One unit of work for a worker; returns the number of payload bytes it received.
Job = Callable[[], Awaitable[int]]


async def run_fixed(
    jobs: list[Job], total: int, time_limit_s: float, timeout_s: float = REQUEST_TIMEOUT_S
) -> RunResult:
    """Run `total` jobs over ``len(jobs)`` workers (worker i always calls ``jobs[i]``).

    Workers stop taking new jobs once `time_limit_s` has passed; a job slower than
    `timeout_s` counts as an error.
    """
    result = RunResult(concurrency=len(jobs), planned=total, completed=0, elapsed_s=0.0)
    issued = 0
    deadline = time.perf_counter() + time_limit_s

    async def worker(job: Job) -> None:
        nonlocal issued
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            try:
                size = await asyncio.wait_for(job(), timeout_s)
            except Exception as exc:  # a failed request is reported, never hidden
                result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies_s.append(time.perf_counter() - started)
            result.response_bytes = size
            result.completed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(job) for job in jobs))
    result.elapsed_s = time.perf_counter() - started
    return result


class HttpWorkers:
    """`concurrency` keep-alive connections, each a `Job` that GETs the same request."""

    def __init__(self, host: str, port: int, raw_request: bytes, concurrency: int) -> None:
        self.host, self.port, self.raw = host, port, raw_request
        self.connections: list[_Connection | None] = [None] * concurrency

    def _job(self, index: int) -> Job:
        async def job() -> int:
            connection = self.connections[index]
            if connection is None or connection.closed:
                connection = self.connections[index] = await connect(self.host, self.port)
            try:
                response = await connection.request(self.raw)
            except BaseException:
                connection.close()
                raise
            if response.status != 200:
                raise ProtocolError(f"HTTP {response.status}")
            return response.body_bytes

        return job

    async def open(self) -> None:
        """Connect every worker now, so no measured request pays for a TCP handshake."""
        for index, connection in enumerate(self.connections):
            if connection is None or connection.closed:
                self.connections[index] = await connect(self.host, self.port)

    @property
    def jobs(self) -> list[Job]:
        return [self._job(i) for i in range(len(self.connections))]

    def close(self) -> None:
        for connection in self.connections:
            if connection is not None:
                connection.close()


async def fetch(host: str, port: int, raw_request: bytes) -> Response:
    """One request on a fresh connection, keeping the body (for checks, not for timing)."""
    connection = await connect(host, port)
    try:
        return await asyncio.wait_for(connection.request(raw_request, keep_body=True), 300)
    finally:
        connection.close()
