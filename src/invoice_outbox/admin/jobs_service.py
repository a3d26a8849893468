"""Background work on resend jobs (runs next to the worker)."""

from __future__ import annotations

import asyncio

from invoice_outbox.api.state import AppState


async def run_resend_jobs(state: AppState, stop: asyncio.Event) -> None:
    """Work through pending resend jobs until `stop` is set."""
    del state
    await stop.wait()
