"""``invoice-outbox system``: configure external systems from the command line."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from invoice_outbox.clock import SystemClock
from invoice_outbox.settings import Settings

system_app = typer.Typer(help="Configure external systems.", no_args_is_help=True)


async def _put(settings: Settings, name: str, raw: bytes) -> str:
    from invoice_outbox.db.engine import make_async_engine, make_session_factory
    from invoice_outbox.systems.schemas import SystemIn
    from invoice_outbox.systems.service import put_system, validate_target

    spec = SystemIn.model_validate(orjson.loads(raw))
    await validate_target(spec, allow_private=settings.allow_private_targets)
    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            _, created = await put_system(session, name, spec, now=SystemClock().now())
            await session.commit()
    finally:
        await engine.dispose()
    return "created" if created else "updated"


@system_app.command("put")
def put(
    name: str,
    json: Annotated[
        str | None, typer.Option("--json", help="The configuration; read from stdin if omitted.")
    ] = None,
) -> None:
    """Create or replace a system, e.g. --json '{"Channel":"Http","Url":"https://...","Practices":[...]}'."""
    from invoice_outbox.cli import _fail, _settings
    from invoice_outbox.systems.service import SystemConfigError

    settings = _settings()
    raw = (json if json is not None else sys.stdin.read()).encode()
    try:
        outcome = asyncio.run(_put(settings, name, raw))
    except (orjson.JSONDecodeError, ValidationError, SystemConfigError) as exc:
        raise _fail(f"system {name!r} not saved: {exc}", 2) from None
    typer.echo(f"system {name!r} {outcome}")


async def _list(settings: Settings) -> list[dict[str, object]]:
    from invoice_outbox.db.engine import make_async_engine, make_session_factory
    from invoice_outbox.systems.service import list_systems, system_view

    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            return [system_view(s) for s in await list_systems(session)]
    finally:
        await engine.dispose()


@system_app.command("list")
def list_() -> None:
    """Print every system (JSON lines, secrets never shown)."""
    from invoice_outbox.cli import _settings

    for view in asyncio.run(_list(_settings())):
        typer.echo(orjson.dumps(view, default=str).decode())
