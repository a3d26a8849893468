"""The README's commands, run as a new user would: real processes, real HTTP, both engines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
def server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    # As `make run`: the demo's systems deliver to the sandbox served by the same process.
    cli_env.update(
        {"INVOICE_OUTBOX_SANDBOX": "true", "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS": "true"}
    )
    port = _free_port()
    assert _cli(cli_env, "migrate").returncode == 0
    demo = _cli(cli_env, "demo", "--sandbox-url", f"http://127.0.0.1:{port}/sandbox")
    assert demo.returncode == 0, demo.stderr
    process = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env,
        stdout=(tmp_path / "serve.out").open("w"),  # a file never fills up and blocks the server
        stderr=(tmp_path / "serve.log").open("w"),
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM: -15 is a clean stop.
        code = process.wait(timeout=60)
        assert code in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()[-3000:]
        assert "worker stopped" in (tmp_path / "serve.log").read_text()


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
    # The worker keeps delivering while we read, so the list may only have grown meanwhile
    # (nothing resends aborted sendings here): the JSON rows come first in the XML too.
    xml_ids = [i.findtext(f"{NS}InvoiceId") for i in items]
    json_ids = [r["InvoiceId"] for r in rows]
    assert set(json_ids) <= set(xml_ids)
    assert {i.findtext(f"{NS}Status") for i in items} == {"Aborted"}


def test_demo_invoices_are_really_delivered(server: str, cli_env: dict[str, str]) -> None:
    token = _cli(cli_env, "token", "--role", "admin").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    today = datetime.now(ZoneInfo("Africa/Johannesburg")).date().isoformat()
    route = f"{server}/api/v1/billing/invoices/sent/sentDate/{today}"
    # The in-process worker delivers the demo's live invoices to the sandbox; poll the
    # observable result (bounded), as a user refreshing the list would.
    deadline = time.monotonic() + 60
    sent: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(sent) < 10:
        sent = httpx.get(route, headers=headers).json()
        time.sleep(0.2)
    assert len(sent) >= 10
    assert {row["Status"] for row in sent} == {"Sent"}
    metrics = httpx.get(f"{server}/metrics").text
    assert 'invoice_outbox_deliveries_total{outcome="Sent",system="MediSwitch"}' in metrics


def test_the_sandbox_behaves_like_a_switch(server: str, cli_env: dict[str, str]) -> None:
    """As a new user sees it after `make run`: within a minute or so, Accepted, Rejected (with
    the switch's code and the catalogue's words) and Overdue ("no acknowledgement yet"), and
    acknowledgements the sandbox sent back, signed, to our acknowledgement API."""
    token = _cli(cli_env, "token", "--role", "admin").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    route = f"{server}/api/v1/billing/sendings?system=MediSwitch&limit=1000"
    seen: dict[str, list[dict[str, object]]] = {}
    # Poll the observable result (bounded): Overdue needs the demo's 30 s deadline to pass.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = httpx.get(route, headers=headers).json()["Items"]
        seen = {}
        for item in items:
            seen.setdefault(str(item["Acceptance"]), []).append(item)
        if {"Accepted", "Rejected", "Overdue"} <= set(seen) and _acknowledged(server, headers):
            break
        time.sleep(0.5)
    assert {"Accepted", "Rejected", "Overdue"} <= set(seen), sorted(seen)
    rejected = seen["Rejected"][0]
    assert rejected["Status"] == "Aborted"
    assert rejected["AcceptanceCode"]
    assert str(rejected["CauseLabel"])
    assert _acknowledged(server, headers), "the sandbox's acknowledgements were applied"
    aborted = httpx.get(f"{server}/api/v1/billing/invoices/aborted", headers=headers).json()
    assert any("rejected the invoice" in str(row["Reason"]) for row in aborted)


def _acknowledged(server: str, headers: dict[str, str]) -> bool:
    """Some sending's verdict came by an acknowledgement (applied)."""
    audit = httpx.get(
        f"{server}/api/v1/billing/sendings?system=MediSwitch&limit=1000", headers=headers
    ).json()["Items"]
    for item in audit:
        if item["Acceptance"] in ("Accepted", "Rejected") and item["AcceptanceCode"] in (
            "00",
            "05",
        ):
            detail = httpx.get(
                f"{server}/api/v1/{item['PracticeId']}/billing/invoices/{item['InvoiceId']}",
                headers=headers,
            ).json()
            for sending in detail["Sendings"]:
                if any(a["Applied"] for a in sending.get("Acknowledgements", [])):
                    return True
    return False


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
