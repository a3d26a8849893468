"""The OpenAPI document is true: Schemathesis, every check, for an admin and a practice user.

The app is served by uvicorn on a free loopback port (no delivery worker), on a fresh SQLite
database with a few systems, invoices and failures, and `schemathesis run` fuzzes every
operation with a bounded number of examples per operation and a fixed seed, once with an admin
token and once with a practice user's.  Every check must pass; the totals are printed (run with
``-s`` to see them) and written to ``fuzz-totals.txt`` in the test's temp dir, beside the whole
run's output (``schemathesis.txt``).  Host names in system URLs are not looked up (no DNS from
tests): see `_no_name_lookups`.  Paging cursors are not generated: see schemathesis.toml.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from invoice_outbox.app import create_app
from invoice_outbox.auth.principal import Role
from invoice_outbox.systems import service
from invoice_outbox.systems.targets import TargetRefused
from tests.conftest import PRACTICE_A, build_settings
from tests.conftest import make_token as _make_token
from tests.pipeline_helpers import configure_system, invoice_body
from tests.web_support import add_web_users, seed_failures

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Examples per operation and phase: enough to find what a lying schema hides, small enough
#: that both roles finish in a couple of minutes on two cores.
MAX_EXAMPLES = int(os.environ.get("INVOICE_OUTBOX_FUZZ_EXAMPLES", "25"))
SEED = 20260205


def make_token(role: Role, *practices: uuid.UUID) -> str:
    """A token valid now (the served app runs on the real clock)."""
    return _make_token(role, *practices, now=datetime.now(UTC))


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _no_name_lookups(host: str, port: int, *, allow_private: bool) -> None:
    """`check_target` without DNS: the fuzzer's host names must not reach a resolver (this
    machine's only network is loopback); IP literals and localhost pass, other names "do not
    resolve" -- which the service answers 409, as it would for a real unknown name."""
    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise TargetRefused(f"{host} does not resolve") from None


@pytest.fixture
def served(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a free port (its own thread and loop), with data to find."""
    monkeypatch.setattr(service, "check_target", _no_name_lookups)
    settings = build_settings(database_url, tmp_path)
    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False
    )
    server = _Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    assert server.ready.wait(timeout=60), "the server did not start within 60 s"
    try:

        async def seed() -> None:
            state = app.state.runtime
            async with state.sessions() as session:
                await add_web_users(session, now=state.clock.now())
                await seed_failures(session, now=state.clock.now())

        asyncio.run_coroutine_threadsafe(seed(), loop).result(timeout=60)
        url = f"http://127.0.0.1:{port}"
        asyncio.run(_seed_over_http(url))
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        loop.close()


async def _seed_over_http(url: str) -> None:
    admin = {"Authorization": f"Bearer {make_token(Role.ADMIN)}"}
    practice = {"Authorization": f"Bearer {make_token(Role.PRACTICE, PRACTICE_A)}"}
    async with httpx.AsyncClient(base_url=url) as client:
        await configure_system(client, admin, "Healthbridge", "http://127.0.0.1:9/invoices")
        for _ in range(3):
            response = await client.post(
                f"/api/v1/{PRACTICE_A}/billing/invoices", json=invoice_body(), headers=practice
            )
            assert response.status_code == 202, response.text


@dataclass(frozen=True)
class Totals:
    operations: int
    cases: int
    server_errors: int
    failures: int
    summary: str


def _totals(output: str) -> Totals:
    operations = re.search(r"Tested:\s+(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    server_errors = len(re.findall(r"Server error", output))
    failures = re.search(r"(\d+) failures?", output.splitlines()[-1] if output else "")
    summary = "\n".join(output.splitlines()[-25:])
    return Totals(
        operations=int(operations.group(1)) if operations else 0,
        cases=int(cases.group(1)) if cases else 0,
        server_errors=server_errors,
        failures=int(failures.group(1)) if failures else 0,
        summary=summary,
    )


def _fuzz(url: str, token: str, report: Path) -> tuple[int, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--workers",
        "1",  # SQLite: one writer at a time (a busy database would be a 503, a 5xx)
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    done = subprocess.run(  # in the temp dir: Schemathesis keeps a cache in its working dir
        command,
        env=env,
        cwd=report.parent,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", [Role.ADMIN, Role.PRACTICE])
def test_every_check_passes(served: str, role: Role, tmp_path: Path) -> None:
    practices = (PRACTICE_A,) if role is Role.PRACTICE else ()
    code, output = _fuzz(served, make_token(role, *practices), tmp_path / "junit.xml")
    totals = _totals(output)
    line = (
        f"schemathesis ({role.value}): {totals.operations} operations, {totals.cases} cases, "
        f"{totals.server_errors} 5xx, {totals.failures} failures"
    )
    print(line)
    (tmp_path / "fuzz-totals.txt").write_text(line + "\n" + totals.summary)
    (tmp_path / "schemathesis.txt").write_text(output)  # the whole run, for a failure
    assert code == 0, output[-20000:]
    assert totals.operations > 20
