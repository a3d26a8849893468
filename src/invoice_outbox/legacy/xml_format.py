"""XML as ASP.NET Web API's XmlMediaTypeFormatter (DataContractSerializer) writes it.

The public face of the XML writers: bare lists and error bodies (`_xml`), the
``RestApiResult<T>`` envelope (`xml_envelope`) and DataContract generic naming
(`datacontract`).  Their module docstrings state the rules and where they come from.
"""

from __future__ import annotations

from invoice_outbox.legacy._xml import (
    EMPTY_END,
    LIST_ROOT,
    XML_LIST,
    XML_LIST_CLOSE,
    XML_NS,
    XSI_NS,
    dotnet_local_time,
    error_xml,
    root_open,
    xml_empty_list,
    xml_list_open,
    xml_rows,
    xml_text,
)
from invoice_outbox.legacy.datacontract import datacontract_generic_name
from invoice_outbox.legacy.xml_envelope import (
    DATA_PREFIX,
    ENVELOPE_NS,
    GUID_ENVELOPE_ROOT,
    ROWS_ENVELOPE_ROOT,
    xml_envelope,
    xml_envelope_guid,
    xml_envelope_rows,
    xml_envelope_rows_frame,
)

__all__ = [
    "DATA_PREFIX",
    "EMPTY_END",
    "ENVELOPE_NS",
    "GUID_ENVELOPE_ROOT",
    "LIST_ROOT",
    "ROWS_ENVELOPE_ROOT",
    "XML_LIST",
    "XML_LIST_CLOSE",
    "XML_NS",
    "XSI_NS",
    "datacontract_generic_name",
    "dotnet_local_time",
    "error_xml",
    "root_open",
    "xml_empty_list",
    "xml_envelope",
    "xml_envelope_guid",
    "xml_envelope_rows",
    "xml_envelope_rows_frame",
    "xml_list_open",
    "xml_rows",
    "xml_text",
]
