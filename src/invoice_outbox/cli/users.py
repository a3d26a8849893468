"""``invoice-outbox user add | list | password | unlock``: local users who sign in with POST
/token or on the dashboard."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import typer
from sqlalchemy import select

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


@user_app.command("list")
def user_list() -> None:
    """List users: name, role, practices, and whether sign-in is paused for them."""
    rows = common.run(_list_users(common.settings()))
    if not rows:
        typer.echo("no users yet (add one with `invoice-outbox user add`)")
    for line in rows:
        typer.echo(line)


async def _list_users(settings: Settings) -> list[str]:
    from invoice_outbox.auth.lockout import LockoutPolicy, locked_until
    from invoice_outbox.auth.users import list_users

    lines = []
    async with common.open_session(settings) as session:
        now = SystemClock().now()
        policy = LockoutPolicy.from_settings(settings)
        for user in await list_users(session):
            practices = ",".join(sorted(str(p.practice_id) for p in user.practices)) or "-"
            until = await locked_until(session, policy, name=user.name, client="", now=now)
            paused = f"  sign-in paused until {until:%Y-%m-%d %H:%M} UTC" if until else ""
            lines.append(f"{user.name}\t{user.role}\t{practices}{paused}")
    return lines


@user_app.command("password")
def user_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a new password for a user (their dashboard sessions end)."""
    settings = common.settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    common.run(_set_password(settings, name, password))
    typer.echo(f"password of {name!r} changed; their dashboard sessions were ended")


async def _set_password(settings: Settings, name: str, password: str) -> None:
    from invoice_outbox.admin import audit
    from invoice_outbox.auth.users import set_password

    async with common.open_session(settings) as session:
        user = await set_password(session, name=name, password=password)
        await audit.record(
            session,
            principal=audit.CLI,
            action="user.password",
            reason="invoice-outbox user password",
            target=user.name,
            now=SystemClock().now(),
        )
        await session.commit()


@user_app.command("unlock")
def user_unlock(name: str) -> None:
    """Lift a sign-in pause on a user name (after too many wrong passwords)."""
    forgotten = common.run(_unlock(common.settings(), name))
    if forgotten:
        typer.echo(f"sign-in for {name!r} is open again ({forgotten} failed attempts forgotten)")
    else:
        typer.echo(f"sign-in for {name!r} was not paused; nothing to do")


async def _unlock(settings: Settings, name: str) -> int:
    from invoice_outbox.admin import audit
    from invoice_outbox.auth.lockout import unlock
    from invoice_outbox.auth.models import User
    from invoice_outbox.errors import NotFound

    async with common.open_session(settings) as session:
        if await session.scalar(select(User.id).where(User.name == name.strip())) is None:
            raise NotFound(f"there is no user named {name.strip()!r}")
        forgotten = await unlock(session, name=name)
        if forgotten:
            await audit.record(
                session,
                principal=audit.CLI,
                action="user.unlock",
                reason="invoice-outbox user unlock",
                target=name.strip(),
                details={"FailuresForgotten": forgotten},
                now=SystemClock().now(),
            )
        await session.commit()
    return forgotten
