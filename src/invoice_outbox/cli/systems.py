"""``invoice-outbox system put | list``: configure external systems from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from invoice_outbox.cli import common
from invoice_outbox.clock import SystemClock
from invoice_outbox.errors import Invalid
from invoice_outbox.settings import Settings

system_app = typer.Typer(help="Configure external systems.", no_args_is_help=True)


@system_app.command("put")
def put(
    name: str,
    json: Annotated[
        str | None, typer.Option("--json", help="The configuration; read from stdin if omitted.")
    ] = None,
) -> None:
    """Create or replace a system, e.g. --json '{"Channel":"Http","Url":"https://...","Practices":[...]}'."""
    settings = common.settings()
    raw = (json if json is not None else sys.stdin.read()).encode()
    outcome = common.run(_put(settings, name, raw))
    typer.echo(f"system {name!r} {outcome}")


async def _put(settings: Settings, name: str, raw: bytes) -> str:
    """Validate the configuration (Invalid names the system and the problem), then save it."""
    from invoice_outbox.db.waker import notify_workers
    from invoice_outbox.systems.schemas import SystemIn
    from invoice_outbox.systems.service import put_system, validate_target

    try:
        spec = SystemIn.model_validate(orjson.loads(raw))
        await validate_target(spec, allow_private=settings.allow_private_targets)
        async with common.open_session(settings) as session:
            _, created = await put_system(session, name, spec, now=SystemClock().now())
            await notify_workers(session)  # an enabled system's queue is claimable now
            await session.commit()
    except ValidationError as exc:
        raise Invalid(f"system {name!r} not saved: {_problems(exc)}") from None
    except (orjson.JSONDecodeError, Invalid) as exc:
        raise Invalid(f"system {name!r} not saved: {exc}") from None
    return "created" if created else "updated"


def _problems(error: ValidationError) -> str:
    """ "Field: problem; ..." without the values sent (an AuthValue is a secret)."""
    return "; ".join(
        f"{'.'.join(map(str, problem['loc'])) or 'the document'}: {problem['msg']}"
        for problem in error.errors(include_url=False, include_input=False)
    )


@system_app.command("list")
def list_() -> None:
    """Print every system (JSON lines, secrets never shown)."""
    for view in common.run(_list(common.settings())):
        typer.echo(orjson.dumps(view, default=str).decode())


async def _list(settings: Settings) -> list[dict[str, object]]:
    from invoice_outbox.clock import SystemClock
    from invoice_outbox.sendings.lanes import lane_stats, system_with_lane
    from invoice_outbox.systems.service import list_systems

    now = SystemClock().now()
    async with common.open_session(settings) as session:
        stats = await lane_stats(session, now)
        return [
            system_with_lane(s, stats.get(s.name), now=now) for s in await list_systems(session)
        ]
