"""The ``invoice-outbox`` command (front end 3): `app` is the Typer application.

One module per command group; `common` holds what they share (settings, the database, the
async runner) and maps the domain's errors to a one-line message and an exit code, once, for
every command (its docstring lists the exit codes).

    serve.py     migrate, serve, worker
    demo_cmd.py  demo
    tokens.py    token
    users.py     user add, list, password, unlock
    systems.py   system put, system list
    keys.py      keys status, keys new, keys rotate, keys drop
    sendings.py  sendings list, sendings resend
    practices.py practice name, practice list
    import_cmd.py  import (import_files.py reads the files)
"""

from __future__ import annotations

import typer

from invoice_outbox.cli import (
    demo_cmd,
    import_cmd,
    keys,
    practices,
    sendings,
    serve,
    systems,
    tokens,
    users,
)
from invoice_outbox.cli.common import ErrorMappingGroup

app = typer.Typer(
    cls=ErrorMappingGroup,
    help="invoice-outbox: sends practices' invoices and explains what failed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(serve.migrate)
app.command()(serve.serve)
app.command()(serve.worker)
app.command()(demo_cmd.demo)
app.command()(tokens.token)
app.add_typer(users.user_app, name="user")
app.add_typer(systems.system_app, name="system")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(sendings.sendings_app, name="sendings")
app.add_typer(practices.practice_app, name="practice")
app.command("import")(import_cmd.import_)

__all__ = ["app"]
