"""``invoice-outbox practice name | list``: name practices, so pages show names, not GUIDs."""

from __future__ import annotations

import uuid

import typer

from invoice_outbox.cli import common
from invoice_outbox.clock import SystemClock
from invoice_outbox.settings import Settings

practice_app = typer.Typer(help="Name practices.", no_args_is_help=True)


@practice_app.command("name")
def name(practice: uuid.UUID, new_name: str) -> None:
    """Give the practice PRACTICE (its GUID) the name NEW_NAME (shown on every page)."""
    previous = common.run(_name(common.settings(), practice, new_name))
    shown = " ".join(new_name.split())
    if previous is None:
        typer.echo(f"practice {practice} is now called {shown!r}")
    else:
        typer.echo(f"practice {practice} renamed from {previous!r} to {shown!r}")


async def _name(settings: Settings, practice: uuid.UUID, new_name: str) -> str | None:
    from invoice_outbox.admin import audit
    from invoice_outbox.practices.service import set_name

    async with common.open_session(settings) as session:
        now = SystemClock().now()
        named, previous = await set_name(session, practice, new_name, now=now)
        await audit.record(
            session,
            principal=audit.CLI,
            action="practice.name",
            reason="invoice-outbox practice name",
            practice_id=practice,
            target=named.name,
            details={"PreviousName": previous},
            now=now,
        )
        await session.commit()
    return previous


@practice_app.command("list")
def list_practices() -> None:
    """List the practices this service knows (id, then name or "-")."""
    for line in common.run(_list(common.settings())):
        typer.echo(line)


async def _list(settings: Settings) -> list[str]:
    from invoice_outbox.practices.service import known_practices

    async with common.open_session(settings) as session:
        return [f"{p.id}\t{p.name or '-'}" for p in await known_practices(session)]
