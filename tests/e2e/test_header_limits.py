"""Oversize request headers are refused by the server itself (a real `invoice-outbox serve`), and
by the app under any server; the server goes on answering."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from invoice_outbox.api.boundary import MAX_HEADER_BYTES, MAX_HEADER_LINE_BYTES
from tests.e2e.test_cli_and_server import BIN, _cli, _free_port, _wait_until_ready

_TIMEOUT = 30  # a bound on a stuck read, not a measurement


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    env = {
        "PATH": "/usr/bin:/bin",
        "INVOICE_OUTBOX_DATABASE_URL": database_url,
        "INVOICE_OUTBOX_VAR_DIR": str(tmp_path / "var"),
    }
    assert _cli(env, "migrate").returncode == 0
    port = _free_port()
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=60)


def _exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send `request` (as much as the server reads) and return what it answers, b"" if the
    connection was reset before an answer could be read."""
    with socket.create_connection(address, timeout=_TIMEOUT) as connection:
        try:
            for start in range(0, len(request), 64 * 1024):
                connection.sendall(request[start : start + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what it answered is still to be read
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
def test_a_one_megabyte_header_is_refused_and_the_server_goes_on(
    served: tuple[str, int],
) -> None:
    big = b"a" * (1024 * 1024)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n"
    answer = _exchange(served, request)
    if answer:  # else the connection was reset before the answer could be read: refused too
        # The server's own answer (text), not the app's (JSON): refused before it was all read.
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), answer[:200]
        assert b"content-type: text/plain" in answer
    # The next request is served as usual.
    host, port = served
    assert httpx.get(f"http://{host}:{port}/health", timeout=_TIMEOUT).status_code == 200


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
def test_headers_just_past_the_limit_get_431(served: tuple[str, int]) -> None:
    headers = b"".join(b"X-Part-%d: %s\r\n" % (i, b"b" * 8000) for i in range(9))  # > 64 KiB
    answer = _exchange(served, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
def test_a_large_body_in_the_same_read_as_small_headers_is_no_header(
    served: tuple[str, int],
) -> None:
    body = b"grant_type=password&username=nobody&password=" + b"p" * (300 * 1024)
    request = (
        b"POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    answer = _exchange(served, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]  # the token route's own answer


async def test_the_app_refuses_oversize_headers_under_any_server(
    client: httpx.AsyncClient,
) -> None:
    line = await client.get("/health", headers={"X-Long": "c" * (MAX_HEADER_LINE_BYTES + 1)})
    assert line.status_code == 431
    assert "longer than the limit" in line.json()["Message"]
    many = {f"X-Part-{i}": "d" * 8000 for i in range(MAX_HEADER_BYTES // 8000 + 1)}
    total = await client.get("/health", headers=many)
    assert total.status_code == 431
    fine = await client.get("/health", headers={"X-Long": "e" * 8000})
    assert fine.status_code == 200
