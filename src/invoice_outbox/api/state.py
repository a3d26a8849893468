"""What a running app holds (settings, engine, key, clock) and the dependencies that expose it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from invoice_outbox.clock import Clock
from invoice_outbox.metrics import Metrics
from invoice_outbox.settings import Settings
from invoice_outbox.worker.waker import Waker


@dataclass(slots=True)
class AppState:
    """Built once by the app's lifespan; read by every request."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    signing_key: bytes
    clock: Clock
    waker: Waker
    metrics: Metrics


def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.runtime)


State = Annotated[AppState, Depends(get_state)]


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    """A session per request; the route decides whether to commit."""
    async with state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
