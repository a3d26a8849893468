"""OpenAPI fragments shared by the routes: examples of both formats, value definitions, request
bodies (`body_doc`).  The whole document is completed once by `api/openapi.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

STATUS_VALUES = (
    "`Status`: `Pending` (waiting for its first or next attempt), `Sending` (an attempt is in "
    "flight), `Sent` (delivered: the system took it; one whose recipient's verdict is still to "
    "come is Sent too), `Failed` (the last attempt failed; another is "
    "scheduled), `Aborted` (no more automatic attempts; also a sending the recipient rejected "
    'after receiving it, its Reason naming the rejection: "MediSwitch rejected the invoice: '
    'code 04, Invalid member number"), `Cancelled` (the invoice was cancelled), '
    "`Discarded` (an admin or the practice gave up on it for good; never on the legacy "
    "`aborted` and `failed` lists). "
    "`System`: the name of a configured external system (e.g. a billing system, a medical-aid "
    "switch, a mailbox). `SendingType`: `Invoice` or `Cancellation`. `SendingTime`: time of the "
    "last attempt (of creation before any) — JSON in UTC (`...Z`, whole seconds), XML in the "
    "service's time zone with its offset. `Reason`: why the last attempt failed, or null."
)

_JSON_EXAMPLE = (
    '[{"PracticeId":"1c2d9508-589f-4ac3-8898-16c402da5ea8",'
    '"EncounterId":"fede1c96-5f76-4f88-b173-7c5fb843bfd3",'
    '"InvoiceId":"a7d00b48-46d6-4e66-bf74-8ab8e731ff3c",'
    '"Reason":"Claims switch answered HTTP 503 (service unavailable)","Status":"Aborted",'
    '"System":"MediSwitch","SendingTime":"2026-02-05T16:06:25Z","SendingAttempts":8,'
    '"SendingType":"Invoice"}]'
)

_XML_EXAMPLE = (
    '<ArrayOfInvoiceSendingStatusVo xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns="http://schemas.datacontract.org/2004/07/Com.Healthbridge.Hhas.Billing.Interface.'
    'ValueObjects"><InvoiceSendingStatusVo><EncounterId>fede1c96-5f76-4f88-b173-7c5fb843bfd3'
    "</EncounterId><InvoiceId>a7d00b48-46d6-4e66-bf74-8ab8e731ff3c</InvoiceId><PracticeId>"
    "1c2d9508-589f-4ac3-8898-16c402da5ea8</PracticeId><Reason>Claims switch answered HTTP 503 "
    "(service unavailable)</Reason><SendingAttempts>8</SendingAttempts><SendingTime>"
    "2026-02-05T18:06:25.576601+02:00</SendingTime><SendingType>Invoice</SendingType><Status>"
    "Aborted</Status><System>MediSwitch</System></InvoiceSendingStatusVo>"
    "</ArrayOfInvoiceSendingStatusVo>"
)

_DENIED = "Authorization has been denied for this request."
_ERROR = {
    "description": "Web API error shape",
    "content": {
        "application/json": {
            "example": {"Message": "Authorization has been denied for this request."}
        },
        "application/xml": {"example": f"<Error><Message>{_DENIED}</Message></Error>"},
    },
}

STATUS_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A bare collection of InvoiceSendingStatusVo (no envelope). "
        + STATUS_VALUES,
        "content": {
            "application/json": {"example": _JSON_EXAMPLE},
            "text/json": {"example": _JSON_EXAMPLE},
            "application/xml": {"example": _XML_EXAMPLE},
            "text/xml": {"example": _XML_EXAMPLE},
        },
    },
    401: _ERROR,
    403: _ERROR,
}


ENVELOPE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The `RestApiResult<T>` envelope: `Sucess` (sic), `ResponseCode`, `ResponseMessage`, "
            "`Data`, `Links`. XML root `RestApiResultOfguid` (T = Guid) or "
            "`RestApiResultOfArrayOfInvoiceSendingStatusVo8ZwS41wm` (T = list of rows)."
        ),
        "content": {
            "application/json": {
                "example": {
                    "Sucess": True,
                    "ResponseCode": 200,
                    "ResponseMessage": "...",
                    "Data": "...",
                    "Links": [],
                }
            },
            "application/xml": {},
        },
    },
    400: _ERROR,
    401: _ERROR,
    403: _ERROR,
    404: _ERROR,
}


#: The answers of a command that the state of things can refuse (409).
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ENVELOPE_RESPONSES,
    409: ENVELOPE_RESPONSES[400],
}


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` inlined (OpenAPI cannot resolve them)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_XML_BODY = (
    "JSON as below, or the same members as DataContract XML (Content-Type `application/xml` "
    "or `text/xml`): one root element (e.g. `<Invoice>`) whose children are the members by "
    "name, a list as child elements (`<Systems><string>MediSwitch</string></Systems>`), "
    '`i:nil="true"` for null. Entities and DTDs are refused.'
)


def body_doc(
    model: type[BaseModel],
    example: Mapping[str, Any] | None = None,
    *,
    properties: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` for a route reading a body of `model` with `read_body` (required).

    The schema is JSON's (`model`'s, with `example`); XML bodies are read too, and the route's
    description shows their shape (DataContract XML of the same members).  `properties`
    replaces the schemas of some fields (ones that refer to named schemas, `api/openapi.py`).
    """
    schema = inline_schema(model.model_json_schema())
    for name, replacement in (properties or {}).items():
        description = schema["properties"][name].get("description")
        schema["properties"][name] = {**replacement, "description": description}
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = dict(example)
    return {
        "requestBody": {
            "required": True,
            # XML is described in words: a schema for it would have generators send XML that
            # is not DataContract XML (answered 400), which is not what the route reads.
            "description": _XML_BODY,
            "content": {"application/json": content},
        }
    }
