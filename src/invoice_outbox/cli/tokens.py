"""``invoice-outbox token``: print a bearer token for scripts and first steps."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import typer

from invoice_outbox.auth.keys import KEY_FILE_NAME, signing_key
from invoice_outbox.auth.principal import Principal, Role
from invoice_outbox.auth.tokens import issue_token
from invoice_outbox.cli import common
from invoice_outbox.clock import SystemClock
from invoice_outbox.errors import Invalid


def token(
    role: Annotated[Role, typer.Option(help="admin or practice")],
    practice: Annotated[
        list[uuid.UUID] | None, typer.Option(help="A practice id (repeatable).")
    ] = None,
    subject: Annotated[str, typer.Option(help="Name recorded as the caller.")] = "cli",
    hours: Annotated[float, typer.Option(help="Lifetime in hours.", min=0.01, max=720)] = 8,
) -> None:
    """Print a bearer token (for scripts and first steps)."""
    settings = common.settings()
    practices = frozenset(practice or [])
    if role is Role.PRACTICE and not practices:
        raise Invalid("a practice token needs at least one --practice GUID")
    if role is Role.ADMIN and practices:
        raise Invalid("an admin token sees every practice; drop --practice")
    if settings.jwt_secret is None:
        # A key made up in a directory the service does not use signs tokens it refuses.
        common.require_var_dir(settings, needed_for=f"the token signing key ({KEY_FILE_NAME})")
    key = signing_key(settings)
    principal = Principal(subject=subject, role=role, practices=practices)
    typer.echo(
        issue_token(principal, key=key, now=SystemClock().now(), lifetime=timedelta(hours=hours))
    )
