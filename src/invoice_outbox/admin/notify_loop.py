"""Batched notifications to admins about aborted and recovered sendings (runs next to the
worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from invoice_outbox.admin.notifications import next_due, notify_once
from invoice_outbox.state import AppState

log = logging.getLogger(__name__)

#: Shortest wait between two checks, so a clock that stands still cannot make the loop spin.
MIN_WAIT_SECONDS = 0.5


async def run_notifications(state: AppState, stop: asyncio.Event) -> None:
    """Send at most one notification per interval until `stop` is set.

    Each round runs `notify_once` (which decides whether a period is due) and then waits
    until the next period closes, at most one interval, returning at once when `stop` is
    set.  A failing round is logged and the loop goes on.  With no webhook and no mailbox
    configured, it only waits for `stop`.  Every process may run this: the periods' unique
    ends make sure one of them sends each message.
    """
    settings = state.settings
    if not settings.notifications_enabled:
        log.info(
            "admin notifications off: no webhook or mailbox configured",
            extra={"action": "notify.disabled"},
        )
        await stop.wait()
        return
    interval = timedelta(seconds=settings.notify_interval_seconds)
    log.info(
        "admin notifications on",
        extra={"action": "notify.start", "interval_seconds": settings.notify_interval_seconds},
    )
    while not stop.is_set():
        try:
            await notify_once(state, now=state.clock.now())
        except Exception:
            log.exception("notification round failed", extra={"action": "notify.error"})
        now = state.clock.now()
        wait = (next_due(now, interval) - now).total_seconds()
        wait = min(max(wait, MIN_WAIT_SECONDS), interval.total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    log.info("admin notifications stopped", extra={"action": "notify.stop"})
