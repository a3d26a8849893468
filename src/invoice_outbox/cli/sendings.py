"""``invoice-outbox sendings list | resend``: find failures and send them again by filter.

The filters are the API's list parameters (``--status``, ``--system``, ``--cause``,
``--practice``, ``--from``/``--to`` days in the service's time zone), read by the same parser,
so a bad value is the same one-line error (exit 2).  ``resend`` is the API's bulk resend
(`create_job`), audited as done by ``cli``, and run here to the end (``--dry-run``: only say
what would be sent).  Discarded sendings are left out unless ``--status Discarded`` is given
to ``list``; ``resend`` never picks them by filter (name them in the dashboard).
"""

from __future__ import annotations

from typing import Annotated

import typer

from invoice_outbox.cli import common, keys
from invoice_outbox.clock import SystemClock
from invoice_outbox.settings import Settings

sendings_app = typer.Typer(help="Find sendings and send them again.", no_args_is_help=True)

Status = Annotated[
    str | None,
    typer.Option(help="Pending, Sending, Sent, Failed, Aborted, Cancelled or Discarded."),
]
System = Annotated[str | None, typer.Option(help="A system's name.")]
Cause = Annotated[str | None, typer.Option(help="A cause slug, e.g. http-503 or timeout.")]
Practice = Annotated[str | None, typer.Option(help="A practice id (GUID).")]
Since = Annotated[str | None, typer.Option("--from", help="From this day (yyyy-MM-dd).")]
Until = Annotated[str | None, typer.Option("--to", help="To this day, included.")]


def _items(**given: str | None) -> list[tuple[str, str]]:
    names = {"practice": "practiceId", "since": "from", "until": "to"}
    return [(names.get(k, k), v) for k, v in given.items() if v]


@sendings_app.command("list")
def list_sendings(
    status: Status = "Aborted",
    system: System = None,
    cause: Cause = None,
    practice: Practice = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.", min=1)] = 50,
) -> None:
    """Print sendings (tab-separated: invoice, number, practice, system, status, attempts,
    last attempt, cause, reason), oldest first, and how many match."""
    items = _items(
        status=status, system=system, cause=cause, practice=practice, since=since, until=until
    )
    lines, total = common.run(_list(common.settings(), items, min(limit, 1000)))
    for line in lines:
        typer.echo(line)
    typer.echo(f"{len(lines)} of {total} shown", err=True)


async def _list(
    settings: Settings, items: list[tuple[str, str]], limit: int
) -> tuple[list[str], int]:
    from sqlalchemy import func, select

    from invoice_outbox.practices.service import practice_names
    from invoice_outbox.sendings.filters import shown_by_default
    from invoice_outbox.sendings.list_query import LIST_PARAMS, read_params
    from invoice_outbox.sendings.listing import Order, filtered_statement
    from invoice_outbox.sendings.models import Sending
    from invoice_outbox.sendings.queries import selection_clauses

    selection = shown_by_default(read_params(items, LIST_PARAMS, settings.zone).selection)
    columns = (
        Sending.invoice_id,
        Sending.invoice_number,
        Sending.practice_id,
        Sending.system,
        Sending.status,
        Sending.attempts,
        Sending.sending_time,
        Sending.cause,
        Sending.reason,
    )
    async with common.open_engine(settings) as engine, engine.connect() as connection:
        total = await connection.scalar(
            select(func.count()).select_from(Sending).where(*selection_clauses(selection))
        )
        rows = (
            await connection.execute(
                filtered_statement(columns, selection, Order.SENDING_TIME).limit(limit)
            )
        ).all()
        names = await practice_names(connection, {row[2] for row in rows})
    lines = []
    for invoice, number, practice, system, status, attempts, when, cause, reason in rows:
        cells = (
            str(invoice),
            number or "-",
            names.get(practice, str(practice)),
            system,
            status,
            str(attempts),
            when.strftime("%Y-%m-%d %H:%M:%S UTC"),
            cause or "-",
            " ".join((reason or "").split()),
        )
        lines.append("\t".join(cells))
    return lines, int(total or 0)


@sendings_app.command("resend")
def resend(
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    status: Annotated[str | None, typer.Option(help="Failed or Aborted (default: both).")] = None,
    system: System = None,
    cause: Cause = None,
    practice: Practice = None,
    since: Since = None,
    until: Until = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be sent; change nothing.")
    ] = False,
) -> None:
    """Queue the Failed and Aborted sendings matching the filters again (a resend job)."""
    if not reason.strip():
        from invoice_outbox.errors import Invalid

        raise Invalid("give a --reason: it is kept in the audit log")
    items = _items(
        status=status, system=system, cause=cause, practice=practice, since=since, until=until
    )
    total, done, skipped = common.run(_resend(common.settings(), items, reason, dry_run))
    if dry_run:
        typer.echo(f"dry run: {total} would be sent again; nothing changed")
    else:
        typer.echo(f"{done} of {total} queued again ({skipped} skipped: changed meanwhile)")


async def _resend(
    settings: Settings, items: list[tuple[str, str]], reason: str, dry_run: bool
) -> tuple[int, int, int]:
    from invoice_outbox.admin.models import ResendJob
    from invoice_outbox.admin.resend_loop import run_job_once
    from invoice_outbox.admin.resends import Selection, create_job
    from invoice_outbox.auth.principal import Principal, Role
    from invoice_outbox.errors import Invalid
    from invoice_outbox.runner import worker_state
    from invoice_outbox.sendings.list_query import LIST_PARAMS, read_params

    chosen = read_params(items, LIST_PARAMS, settings.zone).selection
    if any(len(values) > 1 for values in (chosen.systems, chosen.causes, chosen.practices or ())):
        raise Invalid("give one --system, --cause and --practice at a time")
    selection = Selection(
        cause=next(iter(chosen.causes), None),
        has_filter=True,
        practice_id=next(iter(chosen.practices or ()), None),
        system=next(iter(chosen.systems), None),
        statuses=tuple(sorted(chosen.statuses)),
        since=chosen.since,
        until=chosen.until,
    )
    principal = Principal(subject="cli", role=Role.ADMIN, practices=frozenset())
    async with common.open_engine(settings) as engine:
        keys.require_key_file_dir(settings)
        keyring = await keys.start_up_keyring(engine, settings)
        state = await worker_state(settings, engine, keyring=keyring)
        async with state.sessions() as session:
            job = await create_job(
                session,
                principal=principal,
                selection=selection,
                force=False,
                dry_run=dry_run,
                reason=reason.strip(),
                now=SystemClock().now(),
            )
            await session.commit()
            job_id, total = job.id, job.total
        if dry_run:
            return total, 0, 0
        await run_job_once(state, job_id)
        async with state.sessions() as session:
            finished = await session.get(ResendJob, job_id)
            assert finished is not None
            return finished.total, finished.done, finished.skipped
