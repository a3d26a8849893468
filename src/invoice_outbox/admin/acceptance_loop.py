"""Verdicts that do not come: sendings awaiting an acknowledgement past their system's
deadline become Overdue (runs next to the worker, on the injected clock).

Also forgets webhook-ids received long enough ago that a replay of them is refused for its
timestamp anyway.  Every process may run this: the guarded UPDATE moves each sending once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.acknowledgements import forget_old_receipts
from invoice_outbox.state import AppState

log = logging.getLogger(__name__)


async def check_acceptance(state: AppState) -> int:
    """One round: Awaiting → Overdue for every sending past its deadline at the clock's time
    (in batches); old webhook-ids dropped.  Returns how many became Overdue."""
    now = state.clock.now()
    total = 0
    while True:
        async with state.engine.begin() as connection:
            moved = await transitions.mark_overdue(connection, now=now)
        total += len(moved)
        if len(moved) < 1000:
            break
    keep = timedelta(seconds=2 * state.settings.webhook_tolerance_seconds)
    async with state.sessions() as session:
        await forget_old_receipts(session, now=now, keep=keep)
        await session.commit()
    if total:
        log.info("acknowledgements overdue", extra={"action": "acceptance.overdue", "count": total})
    return total


async def run_acceptance_checks(state: AppState, stop: asyncio.Event) -> None:
    """`check_acceptance` every `acceptance_check_seconds` until `stop` is set; a failing
    round is logged and the loop goes on."""
    while not stop.is_set():
        try:
            await check_acceptance(state)
        except Exception:
            log.exception("acceptance check failed", extra={"action": "acceptance.error"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), state.settings.acceptance_check_seconds)
