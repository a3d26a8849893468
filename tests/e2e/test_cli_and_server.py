"""The README's commands, run as a new user would: real processes, real HTTP, both engines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from defusedxml import ElementTree

BIN = Path(sys.executable).parent / "invoice-outbox"
NS = (
    "{http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.ValueObjects}"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    env.update(
        {
            "INVOICE_OUTBOX_DATABASE_URL": database_url,
            "INVOICE_OUTBOX_VAR_DIR": str(tmp_path / "var"),
        }
    )
    return env


@pytest.fixture
def server(cli_env: dict[str, str]) -> Iterator[str]:
    assert _cli(cli_env, "migrate").returncode == 0
    demo = _cli(cli_env, "demo")
    assert demo.returncode == 0, demo.stderr
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_ready(url: str, process: subprocess.Popen[str]) -> None:
    # Polls the readiness probe (synchronisation on an observable state, bounded).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready within 60 s")


def test_readme_flow(server: str, cli_env: dict[str, str]) -> None:
    token = _cli(cli_env, "token", "--role", "admin")
    assert token.returncode == 0, token.stderr
    headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
    as_json = httpx.get(f"{server}/api/v1/billing/invoices/aborted", headers=headers)
    assert as_json.status_code == 200
    rows = json.loads(as_json.content)
    assert rows, "the demo data has aborted sendings"
    assert {row["Status"] for row in rows} == {"Aborted"}
    assert all(row["Reason"] for row in rows)
    as_xml = httpx.get(
        f"{server}/api/v1/billing/invoices/aborted",
        headers={**headers, "Accept": "application/xml"},
    )
    items = ElementTree.fromstring(as_xml.content).findall(f"{NS}InvoiceSendingStatusVo")
    assert len(items) == len(rows)
    assert [i.findtext(f"{NS}InvoiceId") for i in items] == [r["InvoiceId"] for r in rows]


def test_practice_token_and_user_sign_in(server: str, cli_env: dict[str, str]) -> None:
    practice = "1c2d9508-589f-4ac3-8898-16c402da5ea8"
    token = _cli(cli_env, "token", "--role", "practice", "--practice", practice)
    assert token.returncode == 0
    denied = httpx.get(
        f"{server}/api/v1/billing/invoices/aborted",
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    assert denied.status_code == 403
    added = _cli(
        cli_env,
        "user",
        "add",
        "carol",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    signed_in = httpx.post(
        f"{server}/token",
        data={"grant_type": "password", "username": "carol", "password": "a long enough password"},
    )
    assert signed_in.status_code == 200
    allowed = httpx.get(
        f"{server}/api/v1/billing/invoices/aborted",
        headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"},
    )
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "--role", "practice"), "needs at least one --practice"),
        (
            ("token", "--role", "admin", "--practice", "1c2d9508-589f-4ac3-8898-16c402da5ea8"),
            "drop --practice",
        ),
    ],
)
def test_cli_refuses_with_clear_messages(
    cli_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = _cli(cli_env, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_configuration_is_named(cli_env: dict[str, str]) -> None:
    result = _cli({**cli_env, "INVOICE_OUTBOX_TIMEZONE": "Nowhere/Atlantis"}, "migrate")
    assert result.returncode == 2
    assert "INVOICE_OUTBOX_TIMEZONE" in result.stderr


def test_serve_refuses_an_unmigrated_database(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "INVOICE_OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    result = _cli(env, "serve", "--port", str(_free_port()))
    assert result.returncode == 1
    assert "invoice-outbox migrate" in result.stderr
