"""Reading request bodies in either format, and answering in the negotiated one.

XML is parsed with defusedxml (no entities, no DTDs, no external references); JSON with orjson.
Both turn into plain Python values validated by the same pydantic model, so a field means the
same thing whatever the format.  Body size is already bounded by the BodySizeLimit middleware.

Both parsers refuse, with a 400 naming the limit, values nested deeper than `MAX_DEPTH` (checked
without recursion: while parsing for XML, by walking the parsed value for JSON) and strings with
control characters other than tab, CR and LF (`api/boundary.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, Final, TypeVar

import orjson
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from invoice_outbox.api.boundary import control_character, control_message
from invoice_outbox.api.errors import ApiError
from invoice_outbox.legacy.json_format import json_value
from invoice_outbox.legacy.negotiation import negotiate
from invoice_outbox.legacy.xml_objects import xml_object
from invoice_outbox.state import AppState

M = TypeVar("M", bound=BaseModel)
XmlReader = Callable[[Any], dict[str, Any]]
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

#: Deepest nesting of objects/arrays (JSON) or elements (XML) a body may have.
MAX_DEPTH: Final = 64
_TOO_DEEP: Final = f"The request is invalid: the body is nested deeper than {MAX_DEPTH} levels."


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_XML_TYPES: Final = frozenset({"application/xml", "text/xml"})
_JSON_TYPES: Final = frozenset({"application/json", "text/json"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_xml(request: Request) -> bool:
    return _media_type(request) in _XML_TYPES


async def read_body(request: Request, model: type[M], xml_reader: XmlReader) -> tuple[M, Any]:
    """The validated body, and the parsed raw value (JSON value or XML element).

    JSON without a Content-Type too (as older clients send it); any other media type is a 415.
    """
    raw = await raw_body(request)
    if is_xml(request):
        root = parse_xml(raw)
        parsed: Any = root
        data = xml_reader(root)
    else:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "The request is invalid: the body is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "The request is invalid: the body must be a JSON object.")
        check_json_value(parsed)
        data = parsed
    try:
        return model.model_validate(data), parsed
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ApiError(400, f"The request is invalid. {problems}.") from None


async def raw_body(request: Request) -> bytes:
    """The body's bytes, of a media type `read_body` reads (else 415), not empty (else 400)."""
    media = _media_type(request)
    if media and media not in _XML_TYPES | _JSON_TYPES and not media.endswith("+json"):
        raise ApiError(
            415, f"The request entity's media type '{media}' is not supported for this resource."
        )
    raw = await request.body()
    if not raw:
        raise ApiError(400, "The request is invalid: the body is empty.")
    return raw


def check_json_value(value: Any) -> None:
    """400 when `value` nests deeper than `MAX_DEPTH` or a key or string has a control character.

    Iterative (a stack, not recursion), so no depth orjson accepts can exhaust the stack here.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ApiError(400, _TOO_DEEP)
            if isinstance(item, dict):
                for key, member in item.items():
                    _check_text(key)
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    character = control_character(text)
    if character is not None:
        raise ApiError(400, control_message("a string in the body", character))


def parse_xml(raw: bytes) -> Any:
    """The root element of `raw`; 400 for XML that is not well-formed, has a DTD or entities,
    nests deeper than `MAX_DEPTH`, or has a control character in a text or attribute.

    The depth is counted on the parser's start and end events, so a deep document is refused
    before its tree is built.
    """
    depth = 0
    root: Any = None
    try:
        events = ElementTree.iterparse(BytesIO(raw), events=("start", "end"), forbid_dtd=True)
        for event, element in events:
            if event == "end":
                depth -= 1
                for text in (element.text, element.tail, *element.attrib.values()):
                    if text:
                        _check_text(text)
                continue
            depth += 1
            if depth > MAX_DEPTH:
                raise ApiError(400, _TOO_DEEP)
            if root is None:
                root = element
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        message = (
            "DTDs and entities are not accepted"
            if isinstance(exc, DefusedXmlException)
            else "it is not well-formed XML"
        )
        raise ApiError(400, f"The request is invalid: {message}.") from None
    if root is None:
        raise ApiError(400, "The request is invalid: it is not well-formed XML.")
    return root


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
