"""``RestApiResult<T>`` in DataContract XML: the envelope of SPEC.md's two POST routes.

DataContractSerializer writes the members alphabetically: Data, Links, ResponseCode,
ResponseMessage, Sucess; each RestApiLink as HRef, Rel.  RestApiLink is assumed to live in
the envelope's namespace (same CLR namespace), so its elements need no prefix.

The root element is ``RestApiResultOf`` + the data contract name of T (see `datacontract`).
When T's contract lives in another namespace than the envelope (a list of rows, Billing
namespace), .NET declares that namespace on the ``Data`` element with a generated prefix and
qualifies every element inside with it (ClassDataContract.ChildElementNamespaces, then
XmlWriterDelegator.WriteXmlnsAttribute, in dotnet/runtime and referencesource).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import tzinfo
from typing import Final

from invoice_outbox.legacy._xml import EMPTY_END, LIST_ROOT, XML_NS, root_open, xml_rows, xml_text
from invoice_outbox.legacy.datacontract import SERIALIZATION_NS, datacontract_generic_name
from invoice_outbox.legacy.frame import Frame
from invoice_outbox.legacy.rows import Links, SendingRow

__all__ = [
    "DATA_PREFIX",
    "ENVELOPE_NS",
    "GUID_ENVELOPE_ROOT",
    "ROWS_ENVELOPE_ROOT",
    "xml_envelope",
    "xml_envelope_guid",
    "xml_envelope_rows",
    "xml_envelope_rows_frame",
]

ENVELOPE_NS: Final = (
    "http://schemas.datacontract.org/2004/07/"
    "Com.Healthbridge.Core.CommonDomain.Interface.ValueObjects"
)
#: ``RestApiResult<Guid>``: guid is a primitive of the Serialization namespace, so no digest.
GUID_ENVELOPE_ROOT: Final = datacontract_generic_name(
    "RestApiResult`1", [("guid", SERIALIZATION_NS)]
)
#: ``RestApiResult<List<InvoiceSendingStatusVo>>``: the argument's contract is
#: ``ArrayOfInvoiceSendingStatusVo`` in the Billing namespace, which is not built in, so .NET
#: appends the namespaces digest (``RestApiResultOfArrayOfInvoiceSendingStatusVo8ZwS41wm``).
ROWS_ENVELOPE_ROOT: Final = datacontract_generic_name("RestApiResult`1", [(LIST_ROOT, XML_NS)])
#: The prefix DataContractSerializer generates for the Billing namespace on ``Data``:
#: ``"d" + element depth + "p" + n`` (XmlWriterDelegator.WriteXmlnsAttribute); Data is at depth
#: 2 (the root is 1) and it is the first prefix declared there.
DATA_PREFIX: Final = "d2p1"
_DATA_NS_DECL: Final = f'xmlns:{DATA_PREFIX}="{XML_NS}"'


def _string_member(name: str, value: str | None) -> str:
    if value is None:
        return f'<{name} i:nil="true"{EMPTY_END}'
    if value == "":
        return f"<{name}{EMPTY_END}"
    return f"<{name}>{xml_text(value)}</{name}>"


def _after_data(
    sucess: bool, response_code: int, response_message: str | None, links: Links | None
) -> str:
    """Every member after Data (Links, ResponseCode, ResponseMessage, Sucess)."""
    if links is None:
        links_xml = f'<Links i:nil="true"{EMPTY_END}'
    elif not links:
        links_xml = f"<Links{EMPTY_END}"
    else:
        items = "".join(
            f"<RestApiLink>{_string_member('HRef', href)}{_string_member('Rel', rel)}</RestApiLink>"
            for rel, href in links
        )
        links_xml = f"<Links>{items}</Links>"
    return (
        f"{links_xml}<ResponseCode>{response_code:d}</ResponseCode>"
        f"{_string_member('ResponseMessage', response_message)}"
        f"<Sucess>{'true' if sucess else 'false'}</Sucess>"
    )


def xml_envelope(
    root_name: str,
    *,
    data_element: str,
    sucess: bool,
    response_code: int,
    response_message: str | None,
    links: Links | None,
) -> bytes:
    """A ``RestApiResult<T>`` document around an already written ``<Data…>…</Data>``.

    `root_name` is ``RestApiResultOf`` + T's contract name (`datacontract_generic_name`);
    `data_element` the complete Data element, in the envelope namespace.
    """
    return (
        root_open(root_name, ENVELOPE_NS)
        + data_element
        + _after_data(sucess, response_code, response_message, links)
        + f"</{root_name}>"
    ).encode()


def xml_envelope_guid(
    *,
    sucess: bool,
    response_code: int,
    response_message: str | None,
    data: uuid.UUID | None,
    links: Links | None,
) -> bytes:
    """``<RestApiResultOfguid …><Data>…guid…</Data>…``; ``data=None`` gives a nil Data.

    (A .NET ``Guid`` cannot be null; None is for ``RestApiResult<Guid?>``, which has the same
    contract name.)
    """
    data_element = f'<Data i:nil="true"{EMPTY_END}' if data is None else f"<Data>{data}</Data>"
    return xml_envelope(
        GUID_ENVELOPE_ROOT,
        data_element=data_element,
        sucess=sucess,
        response_code=response_code,
        response_message=response_message,
        links=links,
    )


def xml_envelope_rows_frame(
    *, sucess: bool, response_code: int, response_message: str | None, links: Links | None
) -> Frame:
    """Framing of ``RestApiResult<List<InvoiceSendingStatusVo>>`` with streamed rows.

    Between `open` and `close` go ``xml_rows(batch, zone, prefix=DATA_PREFIX)`` batches: the
    Data element declares the Billing namespace as ``d2p1`` and every row element is
    qualified with it, as DataContractSerializer writes a member whose contract lives in
    another namespace (ClassDataContract.ChildElementNamespaces).
    """
    head = root_open(ROWS_ENVELOPE_ROOT, ENVELOPE_NS)
    tail = _after_data(sucess, response_code, response_message, links) + f"</{ROWS_ENVELOPE_ROOT}>"
    return Frame(
        open=f"{head}<Data {_DATA_NS_DECL}>".encode(),
        close=f"</Data>{tail}".encode(),
        empty=f"{head}<Data {_DATA_NS_DECL}{EMPTY_END}{tail}".encode(),
    )


def xml_envelope_rows(
    *,
    sucess: bool,
    response_code: int,
    response_message: str | None,
    rows: Iterable[SendingRow] | None,
    zone: tzinfo,
    links: Links | None,
) -> bytes:
    """``RestApiResult<List<InvoiceSendingStatusVo>>`` in one piece.

    ``rows=None`` gives ``<Data xmlns:d2p1="…" i:nil="true"/>``: .NET declares the child
    namespace before it knows the value is null.
    """
    if rows is None:
        return xml_envelope(
            ROWS_ENVELOPE_ROOT,
            data_element=f'<Data {_DATA_NS_DECL} i:nil="true"{EMPTY_END}',
            sucess=sucess,
            response_code=response_code,
            response_message=response_message,
            links=links,
        )
    frame = xml_envelope_rows_frame(
        sucess=sucess, response_code=response_code, response_message=response_message, links=links
    )
    body = xml_rows(rows, zone, prefix=DATA_PREFIX)
    return frame.open + body + frame.close if body else frame.empty
