"""``invoice-outbox user add``: local users who sign in with POST /token or on the dashboard."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import typer

from invoice_outbox.auth.principal import Role
from invoice_outbox.cli import common
from invoice_outbox.clock import SystemClock
from invoice_outbox.settings import Settings

user_app = typer.Typer(help="Manage local users.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[Role, typer.Option(help="admin or practice")],
    practice: Annotated[
        list[uuid.UUID] | None, typer.Option(help="A practice id (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a local user who can sign in with POST /token."""
    settings = common.settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    common.run(_add_user(settings, name, password, role, practice or []))
    typer.echo(f"user {name!r} added ({role.value})")


async def _add_user(
    settings: Settings, name: str, password: str, role: Role, practices: list[uuid.UUID]
) -> None:
    """Add the user and audit it as done by the CLI (`auth.users.UserError` is Invalid)."""
    from invoice_outbox.admin import audit
    from invoice_outbox.auth.users import add_user

    async with common.open_session(settings) as session:
        now = SystemClock().now()
        user = await add_user(
            session, name=name, password=password, role=role, practices=practices, now=now
        )
        linked = sorted({str(p) for p in practices})
        await audit.record(
            session,
            principal=audit.CLI,
            action="user.add",
            reason="invoice-outbox user add",
            practice_id=uuid.UUID(linked[0]) if len(linked) == 1 else None,
            target=user.name,
            details={"Role": role.value, "Practices": linked},
            now=now,
        )
        await session.commit()
