"""Whether a worker is working: the last loop turn that succeeded, and the errors since.

A worker that cannot reach its database keeps trying (with backoff) and says so: at error
level in its log on every failed turn, in ``/health/ready`` of the process it runs in (`serve`
with its worker), and in ``/metrics`` (the time of its last successful turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

#: Backoff after consecutive failed turns: 0.5 s, 1 s, 2 s, ... at most this long.
MAX_BACKOFF_SECONDS: Final = 30.0
#: A worker failing for this long (or with no successful turn for `stuck_after`) is not ready.
FAILING_FOR: Final = timedelta(seconds=10)


@dataclass(slots=True)
class WorkerHealth:
    """Updated by the worker loop on every turn; read by health checks and metrics."""

    last_success: datetime | None = None
    failing_since: datetime | None = None
    errors_in_a_row: int = 0
    last_error: str | None = None

    def succeeded(self, now: datetime) -> None:
        self.last_success = now
        self.failing_since = None
        self.errors_in_a_row = 0

    def failed(self, now: datetime, error: BaseException) -> float:
        """Note a failed turn; returns the seconds to wait before the next."""
        if self.failing_since is None:
            self.failing_since = now
        self.errors_in_a_row += 1
        # The kind only: a database error's text may quote parameters (ids, never documents,
        # but nothing to gain from them here).
        self.last_error = type(error).__name__
        return float(min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(self.errors_in_a_row - 1, 10)))

    def problem(self, now: datetime, *, stuck_after: timedelta) -> str | None:
        """Why the worker should not count as working, or None when it is."""
        if self.failing_since is not None and now - self.failing_since >= FAILING_FOR:
            return (
                f"failing since {self.failing_since.isoformat()} "
                f"({self.errors_in_a_row} failed turns in a row, last: {self.last_error})"
            )
        if self.last_success is not None and now - self.last_success > stuck_after:
            return f"no turn finished since {self.last_success.isoformat()}"
        return None
