"""The receiving system: a tiny HTTP/1.1 server on loopback that answers 200 at once.

Run as its own process (``python -m benchmarks.delivery.receiver --port N``).  It is asyncio on
uvloop with httptools' C parser and keep-alive: it competes with the contenders and PostgreSQL
for the same two cores, so it must cost as little as possible per request.

* ``POST <any path>``: counted, its ``Idempotency-Key`` remembered; answers ``200`` with an
  empty body.  A request without the header is counted as ``missing_key``.  Under
  ``/delay/<ms>/...`` the answer comes after that many milliseconds (a slow receiving system;
  the waiting costs a timer, not CPU).
* ``GET /counts``: ``{"requests", "distinct_keys", "duplicates", "missing_key", "key_digest"}``
  (``key_digest``: XOR of `key_hash` over the distinct keys, to compare with the database's;
  ``connections``: TCP connections accepted, i.e. how well the client keeps connections alive).
* ``POST /reset``: forget everything (not counted).

`run_receiver` starts it as a subprocess (bounded readiness wait) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from benchmarks.servers import stop_processes

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def key_hash(key: bytes) -> int:
    """64 bits of BLAKE2b of one key; the XOR over distinct keys is an order-free digest."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _delay_s(url: bytes) -> float:
    """Seconds to wait before answering a request for `url` (``/delay/<ms>/...``), else 0."""
    if not url.startswith(b"/delay/"):
        return 0.0
    digits = url[7:].split(b"/", 1)[0]
    return int(digits) / 1000 if digits.isdigit() else 0.0


class Counts:
    """What the receiver saw."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.keys: set[bytes] = set()
        self.duplicates = 0
        self.missing_key = 0
        self.key_digest = 0
        self.connections = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "distinct_keys": len(self.keys),
            "duplicates": self.duplicates,
            "missing_key": self.missing_key,
            "key_digest": self.key_digest,
            "connections": self.connections,
        }


class _Protocol(asyncio.Protocol):
    """One keep-alive connection; httptools calls back as it parses."""

    def __init__(self, counts: Counts) -> None:
        import httptools

        self.counts = counts
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.key: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.counts.connections += 1

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()

    # httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.key = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 15 and name.lower() == b"idempotency-key":
            self.key = value

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        if method == b"GET" and self.url == b"/counts":
            body = json.dumps(self.counts.as_dict()).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
        elif method == b"POST" and self.url == b"/reset":
            self.counts.reset()
            self.transport.write(_OK)
        else:
            counts = self.counts
            counts.requests += 1
            key = self.key
            if key is None:
                counts.missing_key += 1
            elif key in counts.keys:
                counts.duplicates += 1
            else:
                counts.keys.add(key)
                counts.key_digest ^= key_hash(key)
            delay = _delay_s(self.url)
            if delay:
                keep = self.parser.should_keep_alive()
                asyncio.get_running_loop().call_later(delay, self._answer_late, keep)
                return
            self.transport.write(_OK)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def _answer_late(self, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_OK)
        if not keep_alive:
            self.transport.close()


async def _serve(port: int) -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(counts), HOST, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"receiver listening on {HOST}:{port}", flush=True)
    async with server:
        await stop.wait()
    print(f"receiver stopping: {json.dumps(counts.as_dict())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(_serve(args.port))


# -- used by the harness ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receiver:
    """A running receiver process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/invoices"

    def slow_url(self, delay_ms: int, lane: str) -> str:
        """A URL this receiver answers after `delay_ms` milliseconds (`lane` names the path)."""
        return f"http://{HOST}:{self.port}/delay/{delay_ms}/{lane}"

    def _call(self, method: str, path: str) -> bytes:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"receiver answered {response.status} to {method} {path}")
            return body
        finally:
            connection.close()

    def counts(self) -> dict[str, int]:
        data: dict[str, Any] = json.loads(self._call("GET", "/counts"))
        return {str(k): int(v) for k, v in data.items()}

    def reset(self) -> None:
        self._call("POST", "/reset")


@contextmanager
def run_receiver(port: int, log_path: Path, cwd: Path) -> Iterator[Receiver]:
    """Start the receiver on `port`, wait (bounded) until it answers, stop it afterwards."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.delivery.receiver", "--port", str(port)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    receiver = Receiver(port=port, process=process)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                receiver.counts()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"receiver exited:\n{log_path.read_text()[-2000:]}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError("receiver was not ready in time") from None
                time.sleep(0.05)
        yield receiver
    finally:
        stop_processes(process, timeout=STOP_TIMEOUT_S)


if __name__ == "__main__":
    main()
