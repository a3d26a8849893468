"""The audit log, read by admins: who changed what, when and why (``GET api/v1/billing/audit``).

A plain object (not the command envelope), in JSON or XML.  Entries and paging come from
`invoice_outbox.admin.audit`; a cursor it did not hand out propagates as its `BadCursor` (an
`InvalidParameter` naming ``cursor``: 400).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from invoice_outbox.admin import audit
from invoice_outbox.api.bodies import answer
from invoice_outbox.api.deps import Session, State
from invoice_outbox.api.docs import ENVELOPE_RESPONSES
from invoice_outbox.api.security import Admin
from invoice_outbox.errors import InvalidParameter

router = APIRouter(tags=["fixing failures"])


def _aware(name: str, value: datetime | None) -> datetime | None:
    """`value` if it has an offset; `InvalidParameter` (`name`) for a time without one."""
    if value is not None and value.tzinfo is None:
        raise InvalidParameter(name, "needs a time zone offset (e.g. 2026-02-05T00:00:00Z)")
    return value


@router.get(
    "/api/v1/billing/audit",
    summary="The audit log: who changed what, when and why",
    description=(
        "**Admins only.** Every state-changing action by an admin, a practice user, the "
        "command line or a resend job on someone's behalf, newest first. Entries: `Id`, "
        "`Time`, `Actor`, `ActorRole` (`admin`, `practice`, `cli`), `Action`, `Reason`, "
        "`PracticeId`, `Target` (invoice id, sending id, job id, system or user name), "
        "`Affected` (up to 1,000 sending ids), `AffectedCount` (all of them), `Details`. "
        "Actions: " + ", ".join(f"`{a}`" for a in audit.ACTIONS) + ". Filters (all "
        "optional): `actor`, `action`, `practiceId`, `target`, `from` (inclusive) and `to` "
        "(exclusive) with an offset. Paging: `limit` (1-1000, default 100) and `cursor` = "
        "the previous page's `NextCursor` (null on the last page). The log is append-only: "
        "the database refuses to change or delete entries."
    ),
    response_class=Response,
    responses={
        400: ENVELOPE_RESPONSES[400],
        401: ENVELOPE_RESPONSES[401],
        403: ENVELOPE_RESPONSES[403],
    },
)
async def audit_log(
    request: Request,
    state: State,
    session: Session,
    _caller: Admin,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    practiceId: uuid.UUID | None = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    filters = audit.AuditQuery(
        actor=actor,
        action=action,
        practice_id=practiceId,
        target=target,
        since=_aware("from", since),
        until=_aware("to", until),
    )
    entries, next_cursor = await audit.query(session, filters, limit=limit, cursor=cursor)
    value = {"Items": [audit.entry_view(e) for e in entries], "NextCursor": next_cursor}
    return answer(request, state, value, root="AuditLog")
