"""A system's acceptance mode, and reading a recipient's verdict out of an answer's body.

Modes (`AcceptanceMode`): ``Transport`` (delivered = done), ``Response`` (the verdict is in the
answer: a code, and optionally the recipient's message and its own reference, found by a JSON
pointer (RFC 6901) in a JSON body or an XPath in an XML body; lists of codes say which mean
accepted, rejected or pending), ``Acknowledgement`` (the recipient tells us later, signed).

Reading never raises: a body that is not JSON/XML, or has nothing at the place configured,
gives a `Verdict` whose outcome is ``missing``.  A code in none of the lists is a rejection
(an unknown code is never taken for acceptance: a rejected claim nobody notices is money
lost); the catalogue then shows it as unknown, with the raw code.

XPath: the subset ElementTree understands (``/Response/Result/Code``, ``//Code``,
``/a/b[@type='x']``), with an optional final ``/@attribute`` or ``/text()``; namespaces are
ignored (elements match by local name), so a switch's namespace changes nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Final
from xml.etree.ElementTree import Element

import orjson
from defusedxml import ElementTree as SafeElementTree
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from invoice_outbox.systems.channels.base import Verdict, VerdictOutcome
from invoice_outbox.systems.signing import SECRET_PATTERN, check_secret


class AcceptanceMode(enum.StrEnum):
    """How a system tells its verdict."""

    TRANSPORT = "Transport"  # it does not: delivered = done
    RESPONSE = "Response"  # in the answer's body (a code at a JSON pointer or an XPath)
    ACKNOWLEDGEMENT = "Acknowledgement"  # later, through POST api/v1/billing/acknowledgements


__all__ = [
    "MAX_CODE",
    "MAX_MESSAGE",
    "MAX_REFERENCE",
    "AcceptanceConfig",
    "AcceptanceIn",
    "Verdict",
    "clean_text",
    "read_verdict",
]

#: The recipient's words are kept up to this many characters (then "…").
MAX_MESSAGE: Final = 500
MAX_CODE: Final = 64
MAX_REFERENCE: Final = 200
DEFAULT_WITHIN: Final = 86_400
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
Locator = str

Outcome = VerdictOutcome


def clean_text(value: Any, cap: int) -> str | None:
    """`value` as one line of text: control characters removed, whitespace folded, at most
    `cap` characters (the last one "…" when cut).  None for nothing left."""
    if value is None or isinstance(value, dict | list):
        return None
    text = _SPACES.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    if not text:
        return None
    return text if len(text) <= cap else text[: cap - 1] + "…"


_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_STEP = rf"(?:{_NAME}|\*)(?:\[(?:@{_NAME}(?:='[^'/\u0000-\u001f]*')?|[1-9][0-9]{{0,3}})\])?"
#: An XPath setting, as JSON Schema (ECMA-262) and `re` read it: empty, or the subset this
#: service reads (see the module docstring), white space around it stripped.
XPATH_PATTERN: Final = rf"^[ \t\r\n]*(?:(?://?{_STEP})+(?:/@{_NAME}|/text\(\))?)?[ \t\r\n]*$"
#: A JSON pointer setting: empty, or starting with / (white space around it is stripped).
POINTER_PATTERN: Final = r"^[ \t\r\n]*(?:/[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*)?$"


def _acceptance_rules(schema: dict[str, Any]) -> None:
    """The schema says what `AcceptanceIn._consistent` checks, where a schema can say it."""
    properties = schema["properties"]
    properties["Secret"] = {
        "anyOf": [{"type": "null"}, {"type": "string", "maxLength": 200, "pattern": SECRET_PATTERN}]
    }
    for names, pattern in (
        (("CodePointer", "MessagePointer", "ReferencePointer"), POINTER_PATTERN),
        (("CodePath", "MessagePath", "ReferencePath"), XPATH_PATTERN),
    ):
        for name in names:
            properties[name] = {
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "maxLength": 300, "pattern": pattern},
                ]
            }
    present = {"type": "string", "pattern": r"[^ \t\r\n]"}
    schema["anyOf"] = [  # Response mode: where the code is, and which codes mean Accepted
        {"properties": {"Mode": {"not": {"const": AcceptanceMode.RESPONSE.value}}}},
        {
            "required": ["Accepted"],
            "properties": {"Accepted": {"minItems": 1}},
            "anyOf": [
                {"required": ["CodePointer"], "properties": {"CodePointer": present}},
                {"required": ["CodePath"], "properties": {"CodePath": present}},
            ],
        },
    ]


class AcceptanceIn(BaseModel):
    """``Acceptance`` of ``PUT api/v1/billing/systems/{name}``.

    A code in more than one of `Accepted`, `Pending` and `Rejected` means what the first list
    naming it says (`AcceptanceConfig.judge`).
    `Secret` (``whsec_<base64>``) verifies acknowledgements; write-only like every secret:
    omit it to keep the stored one, send "" to remove it.  `Within`: seconds after delivery
    before a sending still awaiting a verdict is Overdue (AcknowledgementWithin).
    """

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_acceptance_rules
    )

    Mode: AcceptanceMode = AcceptanceMode.TRANSPORT
    Secret: SecretStr | None = Field(default=None, max_length=200)
    Within: int | None = Field(default=None, ge=30, le=90 * 86_400)
    Kind: str | None = Field(default=None, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")
    CodePointer: Locator | None = Field(default=None, max_length=300)
    MessagePointer: Locator | None = Field(default=None, max_length=300)
    ReferencePointer: Locator | None = Field(default=None, max_length=300)
    CodePath: Locator | None = Field(default=None, max_length=300)
    MessagePath: Locator | None = Field(default=None, max_length=300)
    ReferencePath: Locator | None = Field(default=None, max_length=300)
    Accepted: list[str] = Field(default_factory=list, max_length=200)
    Rejected: list[str] = Field(default_factory=list, max_length=200)
    Pending: list[str] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> AcceptanceIn:
        for name in ("CodePointer", "MessagePointer", "ReferencePointer"):
            value = getattr(self, name)
            if value is not None and value != "" and not value.startswith("/"):
                raise ValueError(f"Acceptance.{name} must be a JSON pointer starting with /")
        for name in ("CodePath", "MessagePath", "ReferencePath"):
            value = getattr(self, name)
            if value is not None and value:
                _compile_path(value, name)
        if self.Mode is AcceptanceMode.RESPONSE:
            if not (self.CodePointer or self.CodePath):
                raise ValueError(
                    "Acceptance Mode Response needs CodePointer (JSON) or CodePath (XML): "
                    "where the verdict code is in the answer"
                )
            if not self.Accepted:
                raise ValueError("Acceptance Mode Response needs the codes that mean Accepted")
        if self.Secret is not None and self.Secret.get_secret_value():
            check_secret(self.Secret.get_secret_value(), "Acceptance.Secret")
        return self

    def stored(self) -> dict[str, Any]:
        """The non-secret configuration kept on the system (`AcceptanceConfig`'s input)."""
        if self.Mode is AcceptanceMode.TRANSPORT:
            return {"Mode": self.Mode.value}
        values = self.model_dump(exclude={"Secret"}, exclude_none=True)
        values["Mode"] = self.Mode.value
        values["Within"] = self.Within or DEFAULT_WITHIN
        return {k: v for k, v in values.items() if v not in ("", [])}


@dataclass(frozen=True, slots=True)
class AcceptanceConfig:
    """A system's stored acceptance configuration, parsed once per configuration."""

    mode: AcceptanceMode = AcceptanceMode.TRANSPORT
    within_seconds: int = DEFAULT_WITHIN
    kind: str | None = None
    code_pointer: str | None = None
    message_pointer: str | None = None
    reference_pointer: str | None = None
    code_path: str | None = None
    message_path: str | None = None
    reference_path: str | None = None
    accepted: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> AcceptanceConfig:
        s = stored or {}
        try:
            mode = AcceptanceMode(s.get("Mode", AcceptanceMode.TRANSPORT.value))
        except ValueError:
            mode = AcceptanceMode.TRANSPORT
        return cls(
            mode=mode,
            within_seconds=int(s.get("Within") or DEFAULT_WITHIN),
            kind=s.get("Kind"),
            code_pointer=s.get("CodePointer"),
            message_pointer=s.get("MessagePointer"),
            reference_pointer=s.get("ReferencePointer"),
            code_path=s.get("CodePath"),
            message_path=s.get("MessagePath"),
            reference_path=s.get("ReferencePath"),
            accepted=frozenset(s.get("Accepted") or ()),
            rejected=frozenset(s.get("Rejected") or ()),
            pending=frozenset(s.get("Pending") or ()),
        )

    @property
    def transport_only(self) -> bool:
        return self.mode is AcceptanceMode.TRANSPORT

    def judge(self, code: str | None) -> Outcome:
        """What `code` means by the lists (an unlisted code is a rejection)."""
        if code is None:
            return "missing"
        if code in self.accepted:
            return "accepted"
        if code in self.pending:
            return "pending"
        return "rejected"

    def read(self, body: bytes, content_type: str | None) -> Verdict:
        """The verdict in an answer's `body` (see the module docstring); never raises."""
        found = _extract(self, body, content_type or "")
        code = clean_text(found[0], MAX_CODE)
        return Verdict(
            outcome=self.judge(code),
            code=code,
            message=clean_text(found[1], MAX_MESSAGE),
            reference=clean_text(found[2], MAX_REFERENCE),
        )


def read_verdict(config: AcceptanceConfig, body: bytes, content_type: str | None) -> Verdict:
    """`config.read` (a function, for the channel)."""
    return config.read(body, content_type)


# -- JSON pointers -------------------------------------------------------------------------------


def _pointer(document: Any, pointer: str | None) -> Any:
    """RFC 6901: the value at `pointer` in `document`, or None."""
    if not pointer:
        return None
    current = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            current = current.get(token)
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return None
        if current is None:
            return None
    if isinstance(current, bool):
        return str(current).lower()
    return current


# -- XPath (ElementTree's subset, namespaces ignored) ----------------------------------------


def _compile_path(path: str, name: str = "path") -> tuple[str, str | None]:
    """(an ElementTree path from the root, the attribute to read or None).  Raises ValueError
    with a message naming `name` for what ElementTree cannot use."""
    attribute = None
    text = path.strip()
    if not re.fullmatch(XPATH_PATTERN, text):
        raise ValueError(
            f"Acceptance.{name} must be an absolute XPath starting with / of the form "
            "/a/b, //b, /a/b[@type='x'] or /a/b[2], optionally ending in /@attribute or /text()"
        )
    if text.endswith("/text()"):
        text = text[: -len("/text()")]
    match = re.fullmatch(r"(.*)/@([A-Za-z_][\w.-]*)", text)
    if match:
        text, attribute = match[1], match[2]
    if text.startswith("//"):
        element_path = "." + text
    elif text.startswith("/"):
        parts = text[1:].split("/", 1)
        element_path = "." if len(parts) == 1 else "./" + parts[1]
    else:
        raise ValueError(f"Acceptance.{name} must be an absolute XPath starting with /")
    try:
        Element("probe").find(element_path)
    except (SyntaxError, KeyError, TypeError) as exc:
        raise ValueError(f"Acceptance.{name} is not an XPath this service reads: {exc}") from None
    return element_path, attribute


def _strip_namespaces(root: Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rsplit("}", 1)[1]
        for key in [k for k in element.attrib if "}" in k]:
            element.attrib[key.rsplit("}", 1)[1]] = element.attrib.pop(key)


def _xpath(root: Element, path: str | None) -> Any:
    if not path:
        return None
    try:
        element_path, attribute = _compile_path(path)
        found = root.find(element_path)
    except (ValueError, SyntaxError, KeyError):
        return None
    if found is None:
        return None
    if attribute is not None:
        return found.get(attribute)
    return "".join(found.itertext())


def _extract(config: AcceptanceConfig, body: bytes, content_type: str) -> tuple[Any, Any, Any]:
    text = body.lstrip()[:1]
    is_xml = "xml" in content_type or (not content_type.strip() and text == b"<")
    if not is_xml and (config.code_pointer or not config.code_path):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if document is not None:
            return (
                _pointer(document, config.code_pointer),
                _pointer(document, config.message_pointer),
                _pointer(document, config.reference_pointer),
            )
    if config.code_path and (is_xml or text == b"<"):
        try:
            root = SafeElementTree.fromstring(body)
        except Exception:  # defusedxml: malformed or dangerous XML is simply no verdict
            return None, None, None
        _strip_namespaces(root)
        return (
            _xpath(root, config.code_path),
            _xpath(root, config.message_path),
            _xpath(root, config.reference_path),
        )
    return None, None, None
