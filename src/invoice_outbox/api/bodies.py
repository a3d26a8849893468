"""Reading request bodies in either format, and answering in the negotiated one.

XML is parsed with defusedxml (no entities, no DTDs, no external references); JSON with orjson.
Both turn into plain Python values validated by the same pydantic model, so a field means the
same thing whatever the format.  Body size is already bounded by the BodySizeLimit middleware.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from invoice_outbox.api.errors import ApiError
from invoice_outbox.legacy.json_format import json_value
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_objects import xml_object
from invoice_outbox.state import AppState

M = TypeVar("M", bound=BaseModel)
XmlReader = Callable[[Any], dict[str, Any]]
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def is_xml(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type in {"application/xml", "text/xml"}


async def read_body(request: Request, model: type[M], xml_reader: XmlReader) -> tuple[M, Any]:
    """The validated body, and the parsed raw value (JSON value or XML element)."""
    raw = await request.body()
    if not raw:
        raise ApiError(400, "The request is invalid: the body is empty.")
    if is_xml(request):
        try:
            root = ElementTree.fromstring(raw, forbid_dtd=True)
        except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
            message = (
                "DTDs and entities are not accepted"
                if isinstance(exc, DefusedXmlException)
                else "it is not well-formed XML"
            )
            raise ApiError(400, f"The request is invalid: {message}.") from None
        parsed: Any = root
        data = xml_reader(root)
    else:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "The request is invalid: the body is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "The request is invalid: the body must be a JSON object.")
        data = parsed
    try:
        return model.model_validate(data), parsed
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ApiError(400, f"The request is invalid. {problems}.") from None


def xml_children(element: Any) -> dict[str, Any]:
    """A flat element's children as {local name: text, or list of child texts for lists}."""
    result: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if len(child):
            result[name] = [(item.text or "").strip() for item in child]
        elif child.get(_XSI_NIL) == "true":
            result[name] = None
        else:
            result[name] = (child.text or "").strip()
    return result


def _xml_value(element: Any) -> Any:
    """Text, None for ``i:nil``, a list for an element with children (list members)."""
    if element.get(_XSI_NIL) == "true":
        return None
    if len(element):
        return [(item.text or "").strip() for item in element]
    return (element.text or "").strip()


def xml_flat(root: Any, *, nested: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Like `xml_children`, but the children named in `nested` are read as objects (their own
    children by name) unless ``i:nil``; an ``i:nil`` element with children is None too."""
    values: dict[str, Any] = {}
    for child in root:
        name = _local(child.tag)
        if name in nested and child.get(_XSI_NIL) != "true":
            values[name] = xml_flat(child)
        else:
            values[name] = _xml_value(child)
    return values


def answer(
    request: Request,
    state: AppState,
    value: Mapping[str, Any] | list[Any],
    *,
    root: str,
    status_code: int = 200,
) -> Response:
    """`value` as JSON (Json.NET style) or DataContract-style XML, by the Accept header."""
    chosen = negotiate(request.headers.get("accept"))
    if chosen.format == "xml":
        body = xml_object(root, value, state.settings.zone)
    else:
        body = json_value(value)
    return Response(body, status_code, media_type=chosen.content_type)
