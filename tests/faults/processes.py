"""The service as real processes: `invoice-outbox serve` and `invoice-outbox worker`, each with
its own environment, its JSON log in a file, and (in the several-hosts run) its own network
namespace (`ip netns exec NAME ...`, which execs the command: the pid is the service's)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.conftest import TEST_DOCUMENT_KEYS, TEST_SECRET

BIN = Path(sys.executable).parent / "invoice-outbox"


def service_environment(database_url: str, var_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a service process: this one's, without any INVOICE_OUTBOX_* setting
    of the caller's, plus the run's database, state directory, signing key and document key."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    environment.update(
        {
            "INVOICE_OUTBOX_DATABASE_URL": database_url,
            "INVOICE_OUTBOX_VAR_DIR": str(var_dir),
            "INVOICE_OUTBOX_JWT_SECRET": TEST_SECRET,
            # One document key for every process of the run (each would otherwise make its own
            # under its state directory, and none could read what another stored).
            "INVOICE_OUTBOX_DOCUMENT_KEYS": TEST_DOCUMENT_KEYS,
            # The run's receivers are on loopback and on veth addresses the run made.
            "INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS": "true",
            **{f"INVOICE_OUTBOX_{name.upper()}": value for name, value in settings.items()},
        }
    )
    return environment


def _die_with_the_run() -> list[str]:
    """A command prefix that SIGKILLs the process when the run's process ends, however it
    ends (util-linux `setpriv --pdeathsig`; kept across the exec of `ip netns exec`)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class Service:
    """One running process of the service, started at construction."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        environment: Mapping[str, str],
        log_dir: Path,
        *,
        netns: str | None = None,
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        prefix = _die_with_the_run() + (["ip", "netns", "exec", netns] if netns else [])
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*prefix, str(BIN), *args],
                env=dict(environment),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def lease_pattern(self) -> str:
        """A LIKE pattern matching this process's worker name (host:pid:random)."""
        return f"%:{self.pid}:%"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release, no outcome written after this."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON log lines written so far (other lines, e.g. the banner, are skipped)."""
        for line in self.log.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line being written right now

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_worker(
    name: str,
    environment: Mapping[str, str],
    log_dir: Path,
    *,
    concurrency: int = 8,
    netns: str | None = None,
) -> Service:
    return Service(
        name, ["worker", "--concurrency", str(concurrency)], environment, log_dir, netns=netns
    )


def start_api(
    name: str,
    environment: Mapping[str, str],
    log_dir: Path,
    *,
    host: str,
    port: int,
    netns: str | None = None,
    within: float = 60,
) -> Service:
    """`serve --no-worker` on host:port, returned once /health answers."""
    api = Service(
        name,
        ["serve", "--host", host, "--port", str(port), "--no-worker"],
        environment,
        log_dir,
        netns=netns,
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not api.alive():
            raise AssertionError(f"{name} exited at start:\n{api.log_tail()}")
        try:
            if httpx.get(f"http://{host}:{port}/health", timeout=2).status_code == 200:
                return api
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    api.stop()
    raise AssertionError(f"{name} did not answer within {within} s:\n{api.log_tail()}")


def stop_all(*services: Service | None) -> None:
    """SIGTERM every one at once, then wait for each."""
    running = [s for s in services if s is not None and s.alive()]
    for service in running:
        service.process.send_signal(signal.SIGTERM)
    for service in running:
        service.stop()
