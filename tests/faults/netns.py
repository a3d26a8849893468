"""Hosts of the run's own: one network namespace per host, joined to the root namespace by a
veth pair on a /30 of its own; links the run can cut and restore.

Addresses: 10.213.X.0/24, one X per run (one no interface uses yet); host k's link is
10.213.X.4k/30 with the root end at .4k+1 and the host at .4k+2, and each host routes the /24
through its root end, so it reaches the services listening on root-side addresses (PostgreSQL,
the receiver).  No traffic leaves these links: nothing is forwarded, no default route exists.

Names carry a prefix and the pid of the run (``iochx-<pid>-<role>``, links ``iochx<pid><k>r``)
so that a run removes what a crashed earlier run left behind (its pid is gone) and never what
a run still going made.  Everything is removed in a `finally`.

Namespaces need root and iproute2: elsewhere the run skips with the reason; as root under
CI=true it never skips (a failure to make them fails the run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.databases import IN_CI

PREFIX = "iochx"
NETWORK = "10.213"
IFF_UP = 0x1


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale() -> list[str]:
    """Remove the namespaces and links of runs that are no longer running; their names."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.fullmatch(rf"{PREFIX}-(\d+)-\w+", name)
        if match and _gone(int(match.group(1))):
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show").splitlines():
        match = re.match(rf"\d+: ({PREFIX}(\d+)\d[rn])[@:]", line)
        if match and _gone(int(match.group(2))):
            _ip("link", "delete", match.group(1), check=False)
            removed.append(match.group(1))
    return removed


def _free_octet() -> int:
    used = set(re.findall(rf"inet {re.escape(NETWORK)}\.(\d+)\.", _ip("-o", "-4", "addr", "show")))
    start = os.getpid() % 254
    for step in range(254):
        octet = (start + step) % 254 + 1
        if str(octet) not in used:
            return octet
    raise RuntimeError(f"every {NETWORK}.X.0/24 is in use on this machine")


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address, and the root end of its link."""

    role: str
    netns: str
    address: str
    gateway: str  # the root end's address: where this host reaches the root's services
    root_link: str
    link: str


class Hosts:
    """The run's hosts by role; `cut` and `restore` a host's link."""

    def __init__(self, roles: Sequence[str]) -> None:
        pid = os.getpid()
        self.octet = _free_octet()
        self.network = f"{NETWORK}.{self.octet}.0/24"
        self.by_role = {
            role: Host(
                role=role,
                netns=f"{PREFIX}-{pid}-{role}",
                address=f"{NETWORK}.{self.octet}.{4 * k + 2}",
                gateway=f"{NETWORK}.{self.octet}.{4 * k + 1}",
                root_link=f"{PREFIX}{pid}{k}r",
                link=f"{PREFIX}{pid}{k}n",
            )
            for k, role in enumerate(roles)
        }
        self._batch: subprocess.Popen[str] | None = None

    def __getitem__(self, role: str) -> Host:
        return self.by_role[role]

    @property
    def gateways(self) -> list[str]:
        return [host.gateway for host in self.by_role.values()]

    def create(self) -> None:
        # Cuts go through one `ip -batch` process started now: a cut takes effect within a
        # fraction of a millisecond of the moment the run chose, not after a process start.
        self._batch = subprocess.Popen(
            ["ip", "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        for host in self.by_role.values():
            _ip("netns", "add", host.netns)
            _ip("link", "add", host.root_link, "type", "veth", "peer", "name", host.link)
            _ip("link", "set", host.link, "netns", host.netns)
            _ip("addr", "add", f"{host.gateway}/30", "dev", host.root_link)
            _ip("link", "set", host.root_link, "up")
            inside = ("-n", host.netns)
            _ip(*inside, "addr", "add", f"{host.address}/30", "dev", host.link)
            _ip(*inside, "link", "set", host.link, "up")
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "route", "add", self.network, "via", host.gateway)

    def _set(self, role: str, state: str) -> None:
        link = self[role].root_link
        assert self._batch is not None
        assert self._batch.stdin is not None
        self._batch.stdin.write(f"link set {link} {state}\n")
        self._batch.stdin.flush()
        flags = Path(f"/sys/class/net/{link}/flags")
        deadline = time.monotonic() + 10
        while (int(flags.read_text(), 16) & IFF_UP) != (state == "up"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{link} did not go {state}")
            time.sleep(0.001)

    def cut(self, role: str) -> None:
        """The host's link goes down: nothing reaches it and nothing it sends arrives."""
        self._set(role, "down")

    def restore(self, role: str) -> None:
        self._set(role, "up")

    def remove(self) -> None:
        if self._batch is not None and self._batch.stdin is not None:
            self._batch.stdin.close()
            self._batch.wait(timeout=30)
        for host in self.by_role.values():
            _ip("link", "delete", host.root_link, check=False)  # its peer goes with it
            _ip("netns", "delete", host.netns, check=False)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the fault runs as root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip` command, which is not installed"
    return None


@contextmanager
def hosts(roles: Sequence[str]) -> Iterator[Hosts]:
    """Hosts for `roles`, made (after removing any a crashed run left) and removed afterwards."""
    reason = unavailable_reason()
    if reason is not None:
        if IN_CI and os.geteuid() == 0:
            pytest.fail(f"{reason}; CI=true as root requires the several-hosts run")
        pytest.skip(reason)
    remove_stale()
    made = Hosts(roles)
    try:
        try:
            made.create()
        except RuntimeError as exc:
            if IN_CI:
                raise
            pytest.skip(f"network namespaces cannot be made here: {exc}")
        yield made
    finally:
        made.remove()
