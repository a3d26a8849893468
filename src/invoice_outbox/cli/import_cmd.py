"""``invoice-outbox import FILE``: load a file of invoices through intake, in batches.

FILE holds invoices for one or many practices, as JSON lines or CSV (by its extension, or
``--format``):

- **JSON lines** (``.jsonl``, ``.ndjson``, ``.json``): one invoice per line,
  ``{"PracticeId": "...", "InvoiceId": "...", "EncounterId": "...", "Systems": [...],
  "Document": {...}}`` -- the single submission's body plus ``PracticeId``; blank lines are
  skipped.
- **CSV** (``.csv``), with this header (order free, names exact)::

      PracticeId,InvoiceId,EncounterId,Systems,Document

  ``Systems``: system names separated by ``;`` (empty: the practice's systems);
  ``Document``: the document as JSON text (an object) or as XML (one element).

Each invoice goes through the same intake as ``POST .../billing/invoices`` (the same rules,
the same stored bytes, sealed under the document keys the service holds: the start-up check
of ``worker`` runs first), ``--batch-size`` at a time, each batch one transaction.  Re-running a
file creates nothing new (every invoice already taken is a Duplicate), so an interrupted
import is resumed by running it again.  The progress bar shows lines, rate and time left; the
end shows the count of each outcome.  Lines refused (Invalid or Conflict) are written, as given,
to ``--rejected`` (default FILE's name + ``.rejected`` + its extension) with the reason: in
JSON lines as a ``_Rejected`` member, in CSV as the columns ``Line``, ``Outcome``, ``Reason``.
Both are ignored when the file is imported again, so it can be fixed and re-imported.
Exit code 0 when every line was taken, 1 when some were rejected (see `common`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from invoice_outbox.cli import common, keys
from invoice_outbox.cli.import_files import FORMATS, Line, Rejected, RejectedWriter, read_lines
from invoice_outbox.clock import Clock, SystemClock
from invoice_outbox.errors import Invalid
from invoice_outbox.settings import Settings

if TYPE_CHECKING:
    from invoice_outbox.systems.directory import SystemsDirectory

#: Most invoices in one batch (as the batch route).
MAX_BATCH = 1000


class RateColumn(ProgressColumn):
    """Lines per second, averaged by rich over the last seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} lines/s", style="progress.data.speed")


def count_lines(path: Path) -> int:
    """Lines in the file (for the progress bar's total and time left)."""
    total, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            total += chunk.count(b"\n")
            last = chunk[-1:]
    return total + (last != b"\n")


def import_(
    file: Annotated[Path, typer.Argument(help="JSON lines or CSV of invoices (see --help).")],
    format: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by extension)")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=MAX_BATCH, help="Invoices per transaction.")
    ] = 500,
    rejected: Annotated[
        Path | None, typer.Option(help="Where refused lines go, with reasons.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on a terminal).")] = True,
) -> None:
    """Import a file of invoices (JSON lines or CSV) through intake, resumably."""
    settings = common.settings()
    if not file.is_file():
        raise Invalid(f"no file at {file}")
    kind = (format or FORMATS.get(file.suffix.lower(), "")).lower()
    if kind not in {"jsonl", "csv"}:
        raise Invalid(f"cannot tell the format of {file.name}: name it with --format jsonl|csv")
    target = rejected or file.with_name(f"{file.stem}.rejected{file.suffix or '.jsonl'}")
    console = Console(stderr=True)
    counts = common.run(
        _import(settings, file, kind, batch_size, target, console, progress=progress)
    )
    refused = counts["Invalid"] + counts["Conflict"]
    summary = ", ".join(f"{name} {counts[name]:,}" for name in _OUTCOMES)
    typer.echo(f"imported {sum(counts.values()):,} lines from {file.name}: {summary}")
    if refused:
        typer.echo(f"{refused:,} lines rejected, with reasons, in {target}")
        raise typer.Exit(common.EXIT_FAILURE)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()  # nothing was rejected this time: no stale file from an earlier run


_OUTCOMES = ("Accepted", "Duplicate", "Corrected", "Conflict", "Invalid")


@contextlib.asynccontextmanager
async def _listening(settings: Settings, directory: SystemsDirectory) -> AsyncIterator[None]:
    """PostgreSQL: follow changes of systems while the import runs (as ``serve`` does)."""
    from invoice_outbox.runner import libpq_conninfo
    from invoice_outbox.systems.directory import listen_for_changes

    conninfo = libpq_conninfo(settings.database_url)
    if conninfo is None:
        yield
        return
    task = asyncio.create_task(listen_for_changes(conninfo, directory))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _import(
    settings: Settings,
    file: Path,
    kind: str,
    batch_size: int,
    target: Path,
    console: Console,
    *,
    progress: bool,
    clock: Clock | None = None,
) -> Counter[str]:
    from invoice_outbox.sendings.intake import submit_invoices
    from invoice_outbox.systems.directory import SystemsDirectory

    counts: Counter[str] = Counter(dict.fromkeys(_OUTCOMES, 0))
    directory = SystemsDirectory()
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        disable=not (progress and console.is_terminal),
    )
    clock = clock or SystemClock()
    async with common.open_engine(settings) as engine:
        keys.require_key_file_dir(settings)
        keyring = await keys.start_up_keyring(engine, settings)
        async with _listening(settings, directory):
            with bar, RejectedWriter(target, kind) as writer:
                total = count_lines(file)
                task = bar.add_task(f"importing {file.name}", total=total)
                for batch in read_lines(file, kind, batch_size):
                    good: list[Line] = [line for line in batch if line.submission is not None]
                    submissions = [line.submission for line in good if line.submission]
                    results = await submit_invoices(
                        engine, directory, submissions, now=clock.now(), keyring=keyring
                    )
                    refused = [
                        Rejected(line, "Invalid", line.problem or "unreadable")
                        for line in batch
                        if line.submission is None
                    ]
                    for line, result in zip(good, results, strict=True):
                        counts[result.outcome.value] += 1
                        if result.outcome.value in ("Conflict", "Invalid"):
                            refused.append(Rejected(line, result.outcome.value, result.reason))
                    counts["Invalid"] += len(batch) - len(good)
                    for rejected in sorted(refused, key=lambda r: r.line.number):
                        writer.write(rejected)
                    bar.advance(task, sum(line.physical_lines for line in batch))
                bar.update(task, completed=total)
    return counts
