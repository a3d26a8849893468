"""FastAPI dependencies that expose the process's `AppState` and a database session per request.

Shared by both HTTP front ends (the API's routes and the dashboard's pages).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from invoice_outbox.state import AppState


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hand-off on
    # every request (measured: a tenth of a submission's CPU).
    return cast(AppState, request.app.state.runtime)


State = Annotated[AppState, Depends(get_state)]


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    """A session per request; the route decides whether to commit."""
    async with state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
