"""Answers in the ``RestApiResult<T>`` envelope, JSON or XML by the Accept header."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from invoice_outbox.legacy.json_format import json_envelope, json_envelope_rows, json_value
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_format import xml_envelope_guid, xml_envelope_rows
from invoice_outbox.legacy.xml_objects import xml_object
from invoice_outbox.state import AppState


def guid_envelope(
    request: Request, data: uuid.UUID, *, message: str, status_code: int = 200
) -> Response:
    """``RestApiResult<Guid>`` with `Sucess` true and `ResponseCode` = the HTTP status."""
    chosen = negotiate(request.headers.get("accept"))
    if chosen.format == "xml":
        body = xml_envelope_guid(
            sucess=True, response_code=status_code, response_message=message, data=data, links=[]
        )
    else:
        body = json_envelope(
            sucess=True, response_code=status_code, response_message=message, data=data, links=[]
        )
    return Response(body, status_code, media_type=chosen.content_type)


def rows_envelope(
    request: Request,
    state: AppState,
    rows: Sequence[Sequence[Any]],
    *,
    message: str,
    status_code: int,
) -> Response:
    """``RestApiResult<List<InvoiceSendingStatusVo>>`` with `Data` = `rows`."""
    chosen = negotiate(request.headers.get("accept"))
    if chosen.format == "xml":
        body = xml_envelope_rows(
            sucess=True,
            response_code=status_code,
            response_message=message,
            rows=rows,
            zone=state.settings.zone,
            links=[],
        )
    else:
        body = json_envelope_rows(
            sucess=True, response_code=status_code, response_message=message, rows=rows, links=[]
        )
    return Response(body, status_code, media_type=chosen.content_type)


def command_envelope(
    request: Request,
    state: AppState,
    data: Mapping[str, Any] | Sequence[Any],
    *,
    root: str,
    message: str,
    status_code: int = 200,
) -> Response:
    """``RestApiResult<T>`` for the service's own commands: JSON in the legacy member order;
    XML as DataContract writes it (members alphabetical, root ``RestApiResultOf<T>``)."""
    chosen = negotiate(request.headers.get("accept"))
    value = {
        "Sucess": True,
        "ResponseCode": status_code,
        "ResponseMessage": message,
        "Data": data,
        "Links": [],
    }
    if chosen.format == "xml":
        body = xml_object(root, value, state.settings.zone)
    else:
        body = json_value(value)
    return Response(body, status_code, media_type=chosen.content_type)
