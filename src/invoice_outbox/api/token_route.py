"""``POST /token``: the OAuth2 password grant, as ASP.NET Web API 2 (OWIN) apps issue tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from invoice_outbox.admin.sign_in import LOCKED, Outcome, check_password
from invoice_outbox.api.deps import State
from invoice_outbox.auth.lockout import LockoutPolicy
from invoice_outbox.auth.tokens import issue_token

router = APIRouter(tags=["authentication"])


def _oauth_error(error: str, description: str) -> Response:
    body = orjson.dumps({"error": error, "error_description": description})
    return Response(
        body,
        400,
        media_type="application/json;charset=UTF-8",
        headers={"Cache-Control": "no-cache", "Pragma": "no-cache"},
    )


@router.post(
    "/token",
    summary="Sign in: exchange a user name and password for a bearer token",
    description=(
        "Anyone may call. Form-encoded `grant_type=password&username=...&password=...`. "
        "Answers `{access_token, token_type, expires_in, userName}`; wrong credentials give "
        "400 `invalid_grant` (the same answer whether or not the user exists). Failed "
        "attempts count towards the same lock-out as the dashboard's sign-in (5 for a name, "
        "20 from one address pause sign-in for 15 minutes, doubling): while paused, every "
        "attempt gets 400 `invalid_grant` saying so, without the password being checked."
    ),
    responses={400: {"description": "unsupported grant type, wrong credentials, or paused"}},
)
async def issue(
    request: Request,
    state: State,
    grant_type: Annotated[str, Form(json_schema_extra={"enum": ["password"]})] = "",
    username: Annotated[str, Form(json_schema_extra={"maxLength": 200})] = "",
    password: Annotated[str, Form(json_schema_extra={"maxLength": 1000})] = "",
) -> Response:
    # Checked here rather than by FastAPI, so that every refusal has the OAuth shape.
    if grant_type != "password":
        return _oauth_error("unsupported_grant_type", "Only grant_type=password is supported.")
    if len(username) > 200 or len(password) > 1000:
        return _oauth_error("invalid_request", "username or password is too long.")
    checked = await check_password(
        state.sessions,
        name=username.strip(),
        password=password,
        client=request.client.host if request.client else "unknown",
        now=state.clock.now(),
        policy=LockoutPolicy.from_settings(state.settings),
        via="token",
    )
    if checked.outcome is Outcome.LOCKED:
        return _oauth_error("invalid_grant", LOCKED)
    principal = checked.principal
    if principal is None:
        return _oauth_error("invalid_grant", "The user name or password is incorrect.")
    lifetime = timedelta(seconds=state.settings.token_lifetime_seconds)
    token = issue_token(principal, key=state.signing_key, now=state.clock.now(), lifetime=lifetime)
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
        "userName": principal.subject,
    }
    return Response(
        orjson.dumps(body),
        200,
        media_type="application/json;charset=UTF-8",
        headers={"Cache-Control": "no-cache", "Pragma": "no-cache"},
    )
