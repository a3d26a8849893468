"""The admin dashboard: server-rendered pages under ``/admin`` (Jinja2, a little JS of our own).

`install_web(app)` mounts it (routes, static files, HTML error pages).  The import is lazy so
that `invoice_outbox.web.models` can be imported by the schema metadata without pulling in the
web layer.  How to add a page: see `invoice_outbox.web.pages` (the contract for the next pages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install_web(app: FastAPI) -> None:
    """Add the dashboard to `app`: call after `install_error_handlers(app)`."""
    from invoice_outbox.web.setup import install

    install(app)
