"""Who may call a route: dependencies that authenticate the bearer token and check the role.

A missing or invalid token is the API's own 401 (`unauthorized`, with ``WWW-Authenticate``);
a role or practice the caller lacks is the domain's `AccessDenied` (403), as the routes'
``caller.ensure_access(practice_id)`` raises it too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from invoice_outbox.api.deps import State
from invoice_outbox.api.errors import unauthorized
from invoice_outbox.auth.principal import Principal
from invoice_outbox.auth.tokens import InvalidToken, VerifiedTokens

# Declares the scheme in OpenAPI; we parse the header ourselves to answer in the legacy shape.
_bearer_scheme = HTTPBearer(auto_error=False, description="A token from POST /token or the CLI.")
_verified = VerifiedTokens()


async def current_principal(
    request: Request, state: State, _scheme: Annotated[object, Depends(_bearer_scheme)] = None
) -> Principal:
    """The caller named by a valid ``Authorization: Bearer`` token; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    try:
        return _verified.verify(token.strip(), key=state.signing_key, now=state.clock.now())
    except InvalidToken:
        raise unauthorized() from None


Caller = Annotated[Principal, Depends(current_principal)]


async def require_admin(principal: Caller) -> Principal:
    """Admins only; a practice user gets `AccessDenied` (403)."""
    principal.ensure_admin()
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
