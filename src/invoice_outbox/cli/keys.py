"""``invoice-outbox keys``: the keys that seal invoice documents at rest.

    keys status            how many documents each key seals; which key encrypts; missing keys
    keys new               a new key: first in the key file, or printed for the variable
    keys rotate            re-encrypt every document under the key that encrypts (batches,
                           progress bar, resumable, safe while workers deliver)
    keys drop KID          remove a key no document uses any more from the key file

`start_up_keyring` / `check_document_keys` are the start-up check `serve`, `worker` and `demo`
run first.  Errors propagate to `common.ErrorMappingGroup`: keys that are malformed, wrong or
missing at start-up are configuration (`DocumentKeysInvalid`, exit 2); a database in the way
(documents still under a key) is a `Conflict` (exit 1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.exc import DBAPIError

from invoice_outbox.cli import common
from invoice_outbox.clock import SystemClock
from invoice_outbox.errors import Conflict, Invalid
from invoice_outbox.sendings.keyring import (
    KEY_FILE_NAME,
    KEYS_SETTING,
    DocumentKeyMissing,
    DocumentKeysInvalid,
    Keyring,
    key_file_path,
    keyring_from_entries,
    load_keyring,
    new_entry,
    parse_entries,
    prepend_to_key_file,
    remove_from_key_file,
)
from invoice_outbox.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

keys_app = typer.Typer(
    help="Keys that encrypt invoice documents at rest: status, new, rotate, drop.",
    no_args_is_help=True,
)


def require_key_file_dir(settings: Settings) -> None:
    """With the key file (no INVOICE_OUTBOX_DOCUMENT_KEYS): NotFound unless the state directory
    exists.  A key made up in a directory the service does not use would seal documents the
    service cannot read (and hide the keys it can)."""
    if settings.document_keys is None:
        common.require_var_dir(settings, needed_for=f"the document key file ({KEY_FILE_NAME})")


async def start_up_keyring(
    engine: AsyncEngine, settings: Settings, keyring: Keyring | None = None
) -> Keyring:
    """The settings' keyring (or `keyring`), verified against the database and registered.

    A stored document under a key not held is, at start-up, a configuration error naming
    INVOICE_OUTBOX_DOCUMENT_KEYS (`DocumentKeysInvalid`, exit 2), as a wrong key is."""
    from invoice_outbox.sendings.keystore import open_keyring

    try:
        return await open_keyring(engine, settings, now=SystemClock().now(), keyring=keyring)
    except DocumentKeyMissing as error:
        raise DocumentKeysInvalid(error.message) from None


async def check_document_keys(
    settings: Settings, keyring: Keyring | None = None, *, may_create_var_dir: bool
) -> Keyring:
    """`start_up_keyring` on the configured database (checked first, see `common.open_engine`).

    Only commands that create the state directory anyway (serve, demo) `may_create_var_dir`
    for the key file; the others need it to exist (`require_key_file_dir`)."""
    async with common.open_engine(settings) as engine:
        if not may_create_var_dir:
            require_key_file_dir(settings)
        return await start_up_keyring(engine, settings, keyring)


async def _key_counts(settings: Settings) -> dict[str, int]:
    from invoice_outbox.sendings.keystore import key_counts

    async with common.open_engine(settings) as engine, engine.connect() as connection:
        return await connection.run_sync(key_counts)


@contextlib.contextmanager
def _sync_engine(settings: Settings) -> Iterator[Engine]:
    """A blocking engine for the rotation (checked by `check_document_keys` before), disposed
    at the end; a connection lost on the way is reported as `common.unreachable`."""
    from invoice_outbox.db.engine import make_sync_engine

    engine = make_sync_engine(settings.database_url)
    try:
        yield engine
    except DBAPIError as error:
        raise common.unreachable(settings.database_url, error) from None
    finally:
        engine.dispose()


@keys_app.command("status")
def status() -> None:
    """How many documents each key seals, which key encrypts, and which keys are missing."""
    settings = common.settings()
    counts = common.run(_key_counts(settings))
    require_key_file_dir(settings)
    keyring = load_keyring(settings)
    typer.echo(f"keys from {keyring.source}")
    typer.echo(f"{'key':<34}{'documents':>12}  state")
    kids = [key.kid for key in keyring.keys] + [kid for kid in counts if keyring.get(kid) is None]
    for kid in kids:
        if kid == keyring.current.kid:
            state = "encrypts new documents"
        elif keyring.get(kid) is not None:
            state = "decrypts only" + ("; unused, can be dropped" if not counts.get(kid) else "")
        else:
            state = f"MISSING from {KEYS_SETTING}: these documents cannot be read"
        typer.echo(f"{kid:<34}{counts.get(kid, 0):>12,}  {state}")
    older = sum(n for kid, n in counts.items() if kid != keyring.current.kid)
    typer.echo(f"{sum(counts.values()):,} documents; {older:,} under older keys")
    if older:
        typer.echo("re-encrypt them under the newest key with `invoice-outbox keys rotate`")


@keys_app.command("rotate")
def rotate_command(
    batch_size: Annotated[
        int, typer.Option(help="Documents re-encrypted per transaction.", min=1, max=100_000)
    ] = 500,
) -> None:
    """Re-encrypt every document under the key that encrypts (the first key).

    Resumable (run it again after a crash) and safe while workers deliver, once every process
    holds the new key.
    """
    from invoice_outbox.sendings.rotation import pending, rotate

    settings = common.settings()
    keyring = common.run(check_document_keys(settings, may_create_var_dir=False))
    with _sync_engine(settings) as engine:
        with engine.connect() as connection:
            total = pending(connection, keyring)
        if not total:
            typer.echo(f"every document is sealed under {keyring.current.kid!r}; nothing to do")
            return
        label = f"re-encrypting under {keyring.current.kid!r}"
        with typer.progressbar(length=total, label=label, file=None) as bar:
            report = rotate(engine, keyring, batch_size=batch_size, progress=bar.update)
    typer.echo(f"{report.rotated:,} documents re-encrypted under {keyring.current.kid!r}")
    if report.unreadable:
        ids = ", ".join(str(i) for i in report.unreadable[:10])
        more = f" and {len(report.unreadable) - 10} more" if len(report.unreadable) > 10 else ""
        raise Conflict(
            f"{len(report.unreadable)} document(s) could not be decrypted (altered or moved) "
            f"and were left as they are: {ids}{more}; keep their key until they are purged"
        )


@keys_app.command("new")
def new(
    kid: Annotated[
        str | None, typer.Option(help="The new key's id (default: k<date>-<random>).")
    ] = None,
) -> None:
    """Make a new key.  With the key file: put it first there (it encrypts from now on).
    With INVOICE_OUTBOX_DOCUMENT_KEYS set: print it, to put first in the variable."""
    settings = common.settings()
    try:
        entry = new_entry(kid)
    except ValueError as error:
        raise Invalid(str(error)) from None
    new_kid = entry.partition(":")[0]
    if settings.document_keys is not None:
        typer.echo(entry)
        typer.echo(
            f"Put this entry in {KEYS_SETTING} of every process, first after a restart of all "
            "of them with it second (so each can read what the others write), then run "
            "`invoice-outbox keys rotate`.",
            err=True,
        )
        return
    current = common.run(check_document_keys(settings, may_create_var_dir=False))
    [fresh] = keyring_from_entries(parse_entries(entry), source=current.source).keys
    trial = Keyring((fresh, *current.keys), source=current.source)
    # Registers the new key's check value before the key file names it.
    common.run(check_document_keys(settings, trial, may_create_var_dir=False))
    prepend_to_key_file(key_file_path(settings), entry)
    typer.echo(f"key {new_kid!r} added first to {key_file_path(settings)}")
    typer.echo(
        "processes started from now on encrypt with it (running ones read it when they meet "
        "it); re-encrypt older documents with `invoice-outbox keys rotate`"
    )


@keys_app.command("drop")
def drop(kid: str) -> None:
    """Remove a key from the key file once no stored document is sealed under it."""
    settings = common.settings()
    if settings.document_keys is not None:
        raise DocumentKeysInvalid(
            f"the keys come from {KEYS_SETTING}: remove {kid!r} from it there"
        )
    left = common.run(_key_counts(settings)).get(kid, 0)
    if left:
        raise Conflict(f"{left:,} document(s) are still sealed under {kid!r}; rotate first")
    require_key_file_dir(settings)
    remove_from_key_file(key_file_path(settings), kid)
    typer.echo(f"key {kid!r} removed from {key_file_path(settings)}")
