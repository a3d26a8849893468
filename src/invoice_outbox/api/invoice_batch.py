"""Submitting many invoices in one request: POST api/v1/{practiceId}/billing/invoices/batch.

Each item is read and judged on its own by the same intake as a single submission, in one
transaction, and answered in order with its outcome and reason; one bad item never refuses
the others, and no item is ever half applied.  Only a body that is not a list of invoices at
all (or is too long) is refused whole, with 400.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from invoice_outbox.api.bodies import check_json_value, is_xml, parse_xml, raw_body
from invoice_outbox.api.deps import State
from invoice_outbox.api.docs import COMMAND_RESPONSES, body_doc
from invoice_outbox.api.envelopes import command_envelope
from invoice_outbox.api.errors import ApiError
from invoice_outbox.api.invoices import xml_invoice
from invoice_outbox.api.openapi import DOCUMENT_SCHEMA, DOCUMENT_VALUE_REF
from invoice_outbox.api.security import Caller
from invoice_outbox.sendings.intake import IntakeError, ItemResult, Outcome, submit_invoices
from invoice_outbox.sendings.submissions import InvoiceIn, given_invoice_id, read_submission

router = APIRouter(tags=["invoices"])

#: Most invoices one batch may carry.
MAX_BATCH: Final = 1000

_EXAMPLE_ITEM = {
    "InvoiceId": "a7d00b48-46d6-4e66-bf74-8ab8e731ff3c",
    "EncounterId": "fede1c96-5f76-4f88-b173-7c5fb843bfd3",
    "Systems": ["MediSwitch"],
    "Document": {"Lines": [{"Code": "0190", "Amount": "450.00"}]},
}
_RESULT_EXAMPLE = [
    {"InvoiceId": "a7d00b48-46d6-4e66-bf74-8ab8e731ff3c", "Outcome": "Accepted", "Reason": "..."},
    {"InvoiceId": "0c4d...", "Outcome": "Invalid", "Reason": "unknown system(s): MediSwich"},
]
#: An item's schema: the single submission's body (`Document` as `api/openapi.py` names it).
_ITEM_SCHEMA: Final = body_doc(InvoiceIn, properties={"Document": DOCUMENT_SCHEMA})["requestBody"][
    "content"
]["application/json"]["schema"]
_DOCS: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": MAX_BATCH,
                    # An item that is not an invoice is answered Invalid on its own (never a
                    # 400 for the whole batch): any value is a possible item.
                    "items": {"anyOf": [_ITEM_SCHEMA, {"$ref": DOCUMENT_VALUE_REF}]},
                },
                "example": [_EXAMPLE_ITEM],
            },
        },
    }
}


def _items(raw: bytes, xml: bool) -> list[Any]:
    """The body's items (JSON values, or XML elements read as `xml_invoice` reads one), with
    the limits of every body (`bodies`: depth, control characters, well-formed XML)."""
    if xml:
        return [xml_invoice(child) for child in parse_xml(raw)]
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "The request is invalid: the body is not valid JSON.") from None
    if not isinstance(parsed, list):
        raise ApiError(400, "The request is invalid: the body must be a JSON array of invoices.")
    check_json_value(parsed)
    return parsed


def _view(invoice_id: str | None, outcome: Outcome, reason: str) -> dict[str, Any]:
    return {"InvoiceId": invoice_id, "Outcome": outcome.value, "Reason": reason}


@router.post(
    "/api/v1/{practiceId}/billing/invoices/batch",
    summary="Submit up to 1,000 invoices at once; one result per invoice, in order",
    description=(
        "**Admins, or users of that practice.** A JSON array (or XML `<ArrayOfInvoice>` of "
        "`<Invoice>` elements) of invoices as the single submission takes them. Each is judged "
        "on its own, by the same rules (idempotent; a corrected document replaces one not yet "
        "delivered), and never half applied. Answers 200 with the envelope whose `Data` is one "
        "result per invoice, in order: `InvoiceId`, `Outcome` (`Accepted` new sendings queued; "
        "`Duplicate` the same document was submitted before, nothing changed; `Corrected` the "
        "corrected document replaced one not yet delivered; `Conflict` the current state "
        "refuses it: the invoice's (being delivered right now, try again; already delivered; "
        "another practice's or encounter's), the systems' (unknown, or not the practice's), or "
        "this server does not yet hold the key the stored document is encrypted under (try "
        "again); `Invalid` the invoice itself is wrong) and `Reason`. 400 only when the body "
        "is not a list of at most 1,000 invoices."
    ),
    response_class=Response,
    responses={
        **COMMAND_RESPONSES,
        200: {
            "description": "`RestApiResult` whose `Data` lists the results in order",
            "content": {"application/json": {"example": {"Data": _RESULT_EXAMPLE}}},
        },
    },
    openapi_extra=_DOCS,
)
async def submit_batch(
    request: Request, state: State, caller: Caller, practiceId: uuid.UUID
) -> Response:
    caller.ensure_access(practiceId)
    items = _items(await raw_body(request), is_xml(request))
    if len(items) > MAX_BATCH:
        raise ApiError(
            400,
            f"The request is invalid: {len(items)} invoices; a batch takes at most {MAX_BATCH}.",
        )
    answers: list[dict[str, Any] | None] = [None] * len(items)
    submissions, places = [], []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise IntakeError("each item must be an invoice (a JSON object)")
            submissions.append(read_submission(practiceId, item))
            places.append(index)
        except IntakeError as exc:
            answers[index] = _view(given_invoice_id(item), Outcome.INVALID, exc.message)
    results: list[ItemResult] = []
    if submissions:
        results = await submit_invoices(
            state.engine,
            state.systems,
            submissions,
            now=state.clock.now(),
            keyring=state.keyring,
            waker=state.waker,
            slots=state.intake_slots,
            autocommit=state.intake_engine,
        )
    for index, result in zip(places, results, strict=True):
        answers[index] = _view(str(result.invoice_id), result.outcome, result.reason)
    counts = {o: sum(1 for a in answers if a and a["Outcome"] == o.value) for o in Outcome}
    message = ", ".join(f"{n} {o.value.lower()}" for o, n in counts.items() if n) or "no invoices"
    return command_envelope(
        request,
        state,
        answers,
        root="RestApiResultOfArrayOfInvoiceSubmissionResult",
        message=f"Batch of {len(items)}: {message}",
    )
