"""The OpenAPI document, made to say what the routes really answer.

FastAPI documents what it sees in the signatures; the service answers more than that, and not
always what FastAPI assumes.  `install_openapi(app)` post-processes FastAPI's document once:

- **Errors.**  Validation errors answer 400 (``api/errors.py``), never 422: every 422 goes.  Every
  operation declares the errors the shared machinery can give it, in the Web API error schema
  (``{"Message": ...}`` or ``<Error><Message>``): 400 (a control character at the boundary, a
  parameter that cannot mean anything), 401 and 403 (bearer-token operations), 404 (operations
  with path parameters: no such resource, or a value no route matches), 413 and 415 (operations
  with a body), 431 (headers over the limit), 503 (the database cannot be reached now).  The
  routes add their own (409, ...).  ``POST /token`` answers its errors as OAuth does
  (``{"error", "error_description"}``).
- **Strings.**  No string may carry C0 control characters other than tab, CR and LF
  (`api/boundary.py`): every string schema without a pattern, format or enum says so.
- **Credentials.**  The bearer tokens come from ``POST /token`` (OAuth2 password grant): the
  document declares that flow beside the bearer scheme.

Request bodies are documented by the routes (`api/docs.py`, `body_doc`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from invoice_outbox.text_patterns import NO_CONTROLS

#: Any JSON value whose strings and keys have no control characters (`api/bodies.py` refuses
#: them at any depth), as a named schema: it refers to itself.
DOCUMENT_VALUE: Final = {
    "anyOf": [
        {"type": "string", "pattern": NO_CONTROLS},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/DocumentValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_CONTROLS},
            "additionalProperties": {"$ref": "#/components/schemas/DocumentValue"},
        },
    ]
}
DOCUMENT_VALUE_REF: Final = "#/components/schemas/DocumentValue"
#: An invoice document: any such value but null.
DOCUMENT_SCHEMA: Final = {"not": {"type": "null"}, "$ref": DOCUMENT_VALUE_REF}

MESSAGE_SCHEMA: Final = {
    "type": "object",
    "properties": {"Message": {"type": "string"}},
    "required": ["Message"],
    "additionalProperties": False,
}
OAUTH_ERROR_SCHEMA: Final = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    "required": ["error", "error_description"],
    "additionalProperties": False,
}
_XML_ERROR: Final = "<Error><Message>...</Message></Error>"

_ERRORS: Final[Mapping[int, str]] = {
    400: "The request is invalid; the message names the parameter or field and the problem.",
    401: "No valid bearer token (`Authorization: Bearer ...`).",
    403: "The caller's role or practices do not allow this.",
    404: "No such resource (or not one the caller may see).",
    409: "The request is sound, but the current state refuses it; the message says why.",
    413: "The request body is larger than INVOICE_OUTBOX_MAX_BODY_BYTES.",
    415: "The body's Content-Type is neither JSON (`application/json`, `text/json`) nor XML "
    "(`application/xml`, `text/xml`).",
    431: "A request header is longer than 16 KiB, or all of them together than 64 KiB.",
    503: "The database cannot be reached now; try again after `Retry-After` seconds.",
}
_RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def error_doc(status: int, description: str | None = None) -> dict[str, Any]:
    """A response in the Web API error shape, JSON or XML by the Accept header."""
    json_content = {"schema": MESSAGE_SCHEMA}
    xml_content = {"example": _XML_ERROR}
    doc: dict[str, Any] = {
        "description": description or _ERRORS.get(status, "An error."),
        "content": {
            "application/json": json_content,
            "text/json": json_content,
            "application/xml": xml_content,
            "text/xml": xml_content,
        },
    }
    if status == 503:
        doc["headers"] = _RETRY_AFTER
    return doc


def _oauth_error_doc(status: int) -> dict[str, Any]:
    return {
        "description": "OAuth error: `invalid_request`, `unsupported_grant_type`, or "
        "`invalid_grant` (wrong name or password, or sign-in paused after failed attempts).",
        "content": {"application/json": {"schema": OAUTH_ERROR_SCHEMA}},
    }


#: Formats whose values cannot hold a control character anyway.
_FORMATS: Final = frozenset({"date", "date-time", "time", "uuid", "uri", "email", "duration"})


def _no_controls(node: Any) -> None:
    """Add `NO_CONTROLS` to every string schema that does not constrain its text already."""
    if isinstance(node, list):
        for item in node:
            _no_controls(item)
        return
    if not isinstance(node, dict):
        return
    constrained = {"pattern", "enum", "const"} & node.keys() or node.get("format") in _FORMATS
    if node.get("type") == "string" and not constrained:
        node["pattern"] = NO_CONTROLS
    for value in node.values():
        _no_controls(value)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return [
        (path, method, operation)
        for path, item in schema.get("paths", {}).items()
        for method, operation in item.items()
        if method in methods
    ]


def _complete(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    statuses = {400, 431}
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {413, 415}
    if path != "/health":
        statuses.add(503)
    for status in sorted(statuses):
        current = responses.get(str(status))
        if current is None or "content" not in current:
            description = current.get("description") if current else None
            responses[str(status)] = error_doc(status, description)
    if path == "/token":
        responses["400"] = _oauth_error_doc(400)
        responses["431"] = _oauth_error_doc(431)
    for parameter in operation.get("parameters", []):
        _no_controls(parameter.get("schema"))
    for content in operation.get("requestBody", {}).get("content", {}).values():
        _no_controls(content.get("schema"))


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for `app`, completed as the module docstring says."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    for path, _method, operation in _operations(schema):
        _complete(path, operation)
    schema.setdefault("components", {}).setdefault("schemas", {})["DocumentValue"] = DOCUMENT_VALUE
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes["PasswordGrant"] = {
        "type": "oauth2",
        "description": "`POST /token` exchanges a user name and password for the bearer token.",
        "flows": {"password": {"tokenUrl": "/token", "scopes": {}}},
    }
    shapes = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # 422 is never answered
        shapes.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi`'s document at /openapi.json (built once, on first request)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(build_openapi(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]


__all__: Final[list[str]] = [
    "DOCUMENT_SCHEMA",
    "MESSAGE_SCHEMA",
    "build_openapi",
    "error_doc",
    "install_openapi",
]
