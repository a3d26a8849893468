"""The admin dashboard: server-rendered pages under ``/admin`` (Jinja2, a little JS of our own).

`install_web(app)` mounts it (routes, static files, HTML error pages).  The import is lazy so
that importing a module of this package does not build every page.

How to add a page (the contract for the next pages):

1. A module with ``router = APIRouter(include_in_schema=False)`` and routes under ``/admin``;
   include it in `invoice_outbox.web.setup.router`.
2. Say who may call it, in the docstring and the signature: ``principal: AdminPage``
   (admins; practice users get a 403 page) or ``principal: PagePrincipal`` (any signed-in
   user: scope by ``principal.may_access(practice_id)``).  Without a session the browser is
   sent to the sign-in page and back (`invoice_outbox.web.sessions`).
3. Answer with ``render(request, "thing.html", {...})`` (`invoice_outbox.web.templating`); the
   template ``{% extends "base.html" %}`` and fills ``{% block content %}``.  Dates:
   ``{{ moment | local_time(zone) }}``.
4. Every POST takes ``form: CsrfForm`` (or ``dependencies=[CsrfChecked]`` for a JS fetch with
   the ``X-CSRF-Token`` header) and its forms carry
   ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">`` (`invoice_outbox.web.csrf`).
5. Bad input raises ``PageError(400, ...)`` / `bad_form` (`invoice_outbox.web.errors`): an HTML
   page, never a 500 or the API's JSON.  The domain's errors (`invoice_outbox.errors`) need no
   ``try``: they become the page of their kind by themselves; catch one only to word it
   differently.  Lists read pages with a cursor, never all rows.
6. Browser tests use ``live_server``, ``admin_page``, ``practice_page`` (tests/browser/conftest.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install_web(app: FastAPI) -> None:
    """Add the dashboard to `app`, after `install_api` (it wraps the API's error handlers)."""
    from invoice_outbox.web.setup import install

    install(app)
