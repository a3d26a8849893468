"""``invoice-outbox demo``: demo systems, practices, a delivery history and demo users."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Annotated

import typer

from invoice_outbox.auth.principal import Role
from invoice_outbox.cli import common, keys
from invoice_outbox.clock import SystemClock
from invoice_outbox.sendings.keyring import Keyring
from invoice_outbox.settings import Settings

#: Under ``var_dir``: the demo users' names and password, which `serve`'s banner shows.
DEMO_CREDENTIALS_FILE = "demo-credentials.txt"


def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only when there are no sendings yet.")
    ] = False,
    sandbox_url: Annotated[
        str,
        typer.Option(
            help="Where the demo systems deliver (serve with INVOICE_OUTBOX_SANDBOX=true)."
        ),
    ] = "http://127.0.0.1:8000/sandbox",
) -> None:
    """Load demo systems, practices, a delivery history, live invoices and demo users."""
    settings = common.settings()
    keyring = common.run(keys.check_document_keys(settings, may_create_var_dir=True))
    loaded, practices, credentials = common.run(
        _load_demo(settings, if_empty, sandbox_url, keyring)
    )
    if not loaded:
        typer.echo("demo data already present; nothing loaded")
        return
    path = settings.var_dir / DEMO_CREDENTIALS_FILE
    _write_private(path, credentials + "\n")
    typer.echo(f"demo data loaded for practices {', '.join(map(str, practices))}")
    typer.echo(f"demo users: {credentials} (kept in {path})")


async def _load_demo(
    settings: Settings, if_empty: bool, sandbox_url: str, keyring: Keyring
) -> tuple[bool, list[uuid.UUID], str]:
    """(loaded, practices, "name / password ..." of the demo users)."""
    from invoice_outbox.auth.users import add_user
    from invoice_outbox.demo import has_sendings, load_demo

    async with common.open_session(settings) as session:
        if if_empty and await has_sendings(session):
            return False, [], ""
        now = SystemClock().now()
        practices = await load_demo(session, now=now, sandbox_url=sandbox_url, keyring=keyring)
        password = secrets.token_urlsafe(12)
        admin_name = f"admin-{secrets.token_hex(2)}" if not if_empty else "admin"
        await add_user(session, name=admin_name, password=password, role=Role.ADMIN, now=now)
        await add_user(
            session,
            name=f"{admin_name}-practice",
            password=password,
            role=Role.PRACTICE,
            practices=[practices[0]],
            now=now,
        )
        await session.commit()
        return (
            True,
            practices,
            f"{admin_name} / {password} (admin), "
            f"{admin_name}-practice / {password} (practice {practices[0]})",
        )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (the state directory is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text)
