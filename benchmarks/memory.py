"""A server's memory, from ``/proc/<pid>/status`` (Linux).

* idle RSS: ``VmRSS`` read while no request is in flight;
* peak RSS: the larger of ``VmHWM`` (the kernel's high-water mark, reset before each run by
  writing ``5`` to ``/proc/<pid>/clear_refs``) and the largest ``VmRSS`` seen by a thread that
  samples every 5 ms during the run.  Both are reported; they agree unless the reset is refused.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

SAMPLE_INTERVAL_S = 0.005


def read_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of `pid`, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset `pid`'s ``VmHWM`` to its current RSS; False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakSampler:
    """``with PeakSampler(pid) as peak: ...`` then read ``peak.peak_kib`` and friends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle_kib = 0
        self.sampled_peak_kib = 0
        self.hwm_kib = 0
        self.samples = 0
        self.reset_ok = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            try:
                rss = read_kib(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.samples += 1
            self.sampled_peak_kib = max(self.sampled_peak_kib, rss)

    def __enter__(self) -> PeakSampler:
        self.idle_kib = read_kib(self.pid)["VmRSS"]
        self.sampled_peak_kib = self.idle_kib
        self.reset_ok = reset_peak(self.pid)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.hwm_kib = read_kib(self.pid).get("VmHWM", 0) if self.reset_ok else 0
        except OSError:
            self.hwm_kib = 0

    @property
    def peak_kib(self) -> int:
        return max(self.sampled_peak_kib, self.hwm_kib)
