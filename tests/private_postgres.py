"""A PostgreSQL server of a test's own: initdb + pg_ctl in a temp dir, on a free port.

For the tests that stop, restart or cut off the database (the fault runs, the outage tests).

Never the machine's shared server (restarting that would break every other test).  A server
left behind by a run that was killed is stopped and deleted by the next run.  The binaries
are the newest under ``/usr/lib/postgresql/*/bin`` (or on PATH).  PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` OS user (``runuser -u postgres --``) in a
directory that user owns.  Where that is impossible the run skips with the reason -- except
under CI=true, where it fails.

`listen` is the address list the server binds (``listen_addresses``): loopback by default, the
root-side veth addresses in the several-hosts run, whose network is then trusted too
(`clients`).  Clients connect with `url`/`admin_url` through `host` (the first address).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.databases import IN_CI

_TIMEOUT = 120
#: A server's directory: this prefix, the pid of the run that owns it, a random part.
DIR_PREFIX = "io-faults-pg-"


def _bin_dir() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def unavailable(reason: str) -> None:
    """Skip the calling run with `reason` (fail under CI=true)."""
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires this test to run")
    pytest.skip(reason)


class PostgresServer:
    """One cluster the run owns; `start`, `stop` (fast: sessions are cut), `restart`."""

    def __init__(
        self,
        bin_dir: Path,
        root: Path,
        prefix: list[str],
        listen: Sequence[str],
        clients: Sequence[str] = (),
    ) -> None:
        self.clients = list(clients)
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.prefix = prefix
        self.listen = list(listen)
        self.host = self.listen[0]
        self.port = free_port(self.host)

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.prefix, str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        options = ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
        self._run("initdb", "-D", str(self.data), *options)
        with (self.data / "pg_hba.conf").open("a") as hba:  # the run's own networks only
            hba.writelines(f"host all all {network} trust\n" for network in self.clients)

    def start(self) -> None:
        # Durability settings off: the run tests the service's behaviour, not the disk's.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={','.join(self.listen)} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop now, as `pg_ctl restart -m fast` does: open sessions are terminated."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """`stop`, then `start` on the same port: every session is cut, nothing is lost."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def url(self, database: str, host: str | None = None) -> str:
        """The service's URL for `database`, reached at `host` (default: the first address)."""
        return f"postgresql+psycopg://postgres@{host or self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a name the run made up
        return self.url(name)


def _remove_stale(bin_dir: Path, prefix: list[str]) -> None:
    """Stop and delete the servers of runs that were killed before they could (pid gone)."""
    for root in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        match = re.fullmatch(rf"{DIR_PREFIX}(\d+)-\w+", root.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if (root / "data" / "postmaster.pid").exists():
            stop = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate"]
            subprocess.run([*stop, "-w", "stop"], capture_output=True, timeout=_TIMEOUT)
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def postgres_server(
    listen: Sequence[str] = ("127.0.0.1",), clients: Sequence[str] = ()
) -> Iterator[PostgresServer]:
    """A started server of the run's own, stopped and deleted afterwards.  `clients`: networks
    (CIDR) trusted besides loopback, e.g. the namespaces' links."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) are installed")
        raise AssertionError("unreachable")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            unavailable("running as root without runuser or a postgres OS user for the server")
            raise AssertionError("unreachable")
        prefix = [runuser, "-u", "postgres", "--"]
    _remove_stale(bin_dir, prefix)
    root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bin_dir, root, prefix, listen, clients)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
