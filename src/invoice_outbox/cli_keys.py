"""``invoice-outbox keys``: the keys that seal invoice documents at rest.

    keys status            how many documents each key seals; which key encrypts; missing keys
    keys new               a new key: first in the key file, or printed for the variable
    keys rotate            re-encrypt every document under the key that encrypts (batches,
                           progress bar, resumable, safe while workers deliver)
    keys drop KID          remove a key no document uses any more from the key file

`check_document_keys` is the start-up check `serve`, `worker` and `demo` run first.
"""

from __future__ import annotations

from typing import Annotated

import typer

from invoice_outbox.clock import SystemClock
from invoice_outbox.errors import OutboxError
from invoice_outbox.sendings.keyring import (
    KEYS_SETTING,
    Keyring,
    key_file_path,
    keyring_from_entries,
    load_keyring,
    new_entry,
    parse_entries,
    prepend_to_key_file,
    remove_from_key_file,
)
from invoice_outbox.settings import Settings, SettingsError, load_settings

keys_app = typer.Typer(
    help="Keys that encrypt invoice documents at rest: status, new, rotate, drop.",
    no_args_is_help=True,
)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _verified(settings: Settings, keyring: Keyring | None = None) -> Keyring:
    """The settings' keyring (or `keyring`), verified against the database and registered."""
    from invoice_outbox.db.engine import make_sync_engine
    from invoice_outbox.sendings.keystore import verify_keyring

    keyring = keyring or load_keyring(settings)
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            verify_keyring(connection, keyring, now=SystemClock().now())
    finally:
        engine.dispose()
    return keyring


def check_document_keys(settings: Settings) -> Keyring:
    """Start-up check: the document keys open every stored document, or the command stops with
    a message naming INVOICE_OUTBOX_DOCUMENT_KEYS (exit code 2)."""
    try:
        return _verified(settings)
    except OutboxError as exc:
        raise _fail(exc.message, 2) from None


@keys_app.command("status")
def status() -> None:
    """How many documents each key seals, which key encrypts, and which keys are missing."""
    from invoice_outbox.db.engine import make_sync_engine
    from invoice_outbox.sendings.keystore import key_counts

    settings = _settings()
    try:
        keyring = load_keyring(settings)
    except OutboxError as exc:
        raise _fail(exc.message, 2) from None
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            counts = key_counts(connection)
    finally:
        engine.dispose()
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
    from invoice_outbox.db.engine import make_sync_engine
    from invoice_outbox.sendings.rotation import pending, rotate

    settings = _settings()
    keyring = check_document_keys(settings)
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            total = pending(connection, keyring)
        if not total:
            typer.echo(f"every document is sealed under {keyring.current.kid!r}; nothing to do")
            return
        label = f"re-encrypting under {keyring.current.kid!r}"
        with typer.progressbar(length=total, label=label, file=None) as bar:
            report = rotate(engine, keyring, batch_size=batch_size, progress=bar.update)
    except OutboxError as exc:
        raise _fail(exc.message) from None
    finally:
        engine.dispose()
    typer.echo(f"{report.rotated:,} documents re-encrypted under {keyring.current.kid!r}")
    if report.unreadable:
        ids = ", ".join(str(i) for i in report.unreadable[:10])
        more = f" and {len(report.unreadable) - 10} more" if len(report.unreadable) > 10 else ""
        raise _fail(
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
    settings = _settings()
    try:
        entry = new_entry(kid)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
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
    current = check_document_keys(settings)
    [fresh] = keyring_from_entries(parse_entries(entry), source=current.source).keys
    trial = Keyring((fresh, *current.keys), source=current.source)
    try:
        _verified(settings, trial)  # registers its check value before anything is sealed
        prepend_to_key_file(key_file_path(settings), entry)
    except OutboxError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"key {new_kid!r} added first to {key_file_path(settings)}")
    typer.echo(
        "processes started from now on encrypt with it (running ones read it when they meet "
        "it); re-encrypt older documents with `invoice-outbox keys rotate`"
    )


@keys_app.command("drop")
def drop(kid: str) -> None:
    """Remove a key from the key file once no stored document is sealed under it."""
    from invoice_outbox.db.engine import make_sync_engine
    from invoice_outbox.sendings.keystore import key_counts

    settings = _settings()
    if settings.document_keys is not None:
        raise _fail(f"the keys come from {KEYS_SETTING}: remove {kid!r} from it there", 2)
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            left = key_counts(connection).get(kid, 0)
    finally:
        engine.dispose()
    if left:
        raise _fail(f"{left:,} document(s) are still sealed under {kid!r}; rotate first")
    try:
        remove_from_key_file(key_file_path(settings), kid)
    except OutboxError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"key {kid!r} removed from {key_file_path(settings)}")
