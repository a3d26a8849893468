"""Start a contender's HTTP server as a subprocess on a free loopback port, and stop it.

Both contenders are single-process uvicorn servers (one worker, uvloop + httptools as uvicorn
picks them) started from this virtualenv, with output going to a log file (never a pipe that
could fill up and stall the server).  Readiness is polled on ``/health/ready``, bounded.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Server:
    """A running contender."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def ours_command() -> list[str]:
    """The real service as an operator starts it, without its in-process delivery worker.

    The benchmark measures a read route over fixed data: a worker would claim the due
    Pending/Failed rows and change them (and their counts) mid-run.  ``--no-worker`` is passed
    when this version of the command has it.
    """
    command = [str(BIN_DIR / "invoice-outbox"), "serve"]
    usage = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return [*command, "--no-worker"] if "--no-worker" in usage.stdout else command


def baseline_command() -> list[str]:
    """The baseline app (benchmarks/baseline_app.py)."""
    return [sys.executable, "-m", "benchmarks.baseline_app"]


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/health/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop_processes(*processes: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every process still running (a graceful stop), then wait for each; one that
    has not exited within `timeout` seconds is killed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextmanager
def serve(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    """Run `command` ``--host 127.0.0.1 --port <free>`` until the block ends (then stop it)."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(port):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield Server(name=name, port=port, process=process, log_path=log_path)
    finally:
        stop_processes(process)


def service_env(database_url: str, var_dir: Path, secret: str) -> dict[str, str]:
    """The environment both servers (and the token command) run with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICE_OUTBOX_")}
    env.update(
        INVOICE_OUTBOX_DATABASE_URL=database_url,
        INVOICE_OUTBOX_VAR_DIR=str(var_dir),
        INVOICE_OUTBOX_JWT_SECRET=secret,
    )
    return env


def admin_token(env: dict[str, str]) -> str:
    """A bearer token from ``invoice-outbox token --role admin`` (the documented way)."""
    done = subprocess.run(
        [str(BIN_DIR / "invoice-outbox"), "token", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()
