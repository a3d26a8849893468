"""An invoice as practice software sends it, read into a `Submission` the same way everywhere.

The API's single and batch routes and the ``import`` command all read an invoice with
`read_submission`, so a field means the same thing, and the same document gives the same
bytes (and so the same hash: a re-import is a Duplicate of what the API took), whatever the
way in.  JSON documents are stored as orjson writes them; an XML document (the one child
element of ``<Document>``, or XML text in a CSV file) as ElementTree writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any
from xml.etree.ElementTree import Element, tostring

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from invoice_outbox.sendings.intake import MAX_SYSTEMS, IntakeError, Submission
from invoice_outbox.systems.schemas import Name

#: The practice's invoice number: 1 to 64 characters, no control characters, trimmed.
InvoiceNumberText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class InvoiceIn(BaseModel):
    """An invoice to deliver.  `Document` is the invoice itself, kept as given."""

    model_config = ConfigDict(extra="forbid")

    InvoiceId: uuid.UUID
    EncounterId: uuid.UUID
    Systems: list[Name] | None = Field(default=None, min_length=1, max_length=MAX_SYSTEMS)
    Document: Any = Field(
        description="The invoice, kept as given. JSON: any value but null. XML: one child "
        "element of <Document>.",
    )
    InvoiceNumber: InvoiceNumberText | None = Field(
        default=None,
        description="Optional: the practice's own reference for the invoice (e.g. INV-2026-0042), "
        "shown beside the id and searchable. Never patient data.",
    )


def problems(error: ValidationError) -> str:
    """The first problems of a validation error, "Field: what" each, never the values sent."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)[:5]
    )


def document_bytes(document: Any) -> tuple[bytes, str]:
    """The stored bytes and media type of a document value (`IntakeError` when there is none)."""
    if isinstance(document, Element):
        return tostring(document, encoding="utf-8", xml_declaration=False), "application/xml"
    if document is None:
        raise IntakeError("Document is required (the invoice itself)")
    return orjson.dumps(document), "application/json"


def read_submission(practice_id: uuid.UUID, values: Mapping[str, Any]) -> Submission:
    """`values` (an invoice's fields, as JSON or XML gave them) as a Submission for
    `practice_id`; `IntakeError` names what is wrong."""
    try:
        body = InvoiceIn.model_validate(values)
    except ValidationError as exc:
        raise IntakeError(problems(exc)) from None
    document, content_type = document_bytes(body.Document)
    return Submission(
        practice_id=practice_id,
        invoice_id=body.InvoiceId,
        encounter_id=body.EncounterId,
        document=document,
        content_type=content_type,
        systems=tuple(body.Systems) if body.Systems is not None else None,
        invoice_number=body.InvoiceNumber,
    )


def given_invoice_id(values: Any) -> str | None:
    """The InvoiceId an item gave, as text (to answer for an item that could not be read)."""
    if not isinstance(values, Mapping):
        return None
    given = values.get("InvoiceId")
    if isinstance(given, uuid.UUID):
        return str(given)
    if isinstance(given, str):
        try:
            return str(uuid.UUID(given))
        except ValueError:
            return given[:100]
    return None
