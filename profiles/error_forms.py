"""The ebXML error answers: RegistryResponse, AdhocQueryResponse and
RetrieveDocumentSetResponse carrying a RegistryErrorList (ITI TF-3 4.2.4).

Status is Failure when any detail is an Error, PartialSuccess when the caller
says some results were returned, Success when only Warnings remain.
"""

from __future__ import annotations

from lxml import etree

from profiles.errors import ErrorDetail, GatewayError, Severity
from profiles.transaction import ErrorForm

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
XDS = "urn:ihe:iti:xds-b:2007"

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def response_status(details: list[ErrorDetail], *, partial: bool = False) -> str:
    if not any(d.severity is Severity.ERROR for d in details):
        return SUCCESS
    return PARTIAL_SUCCESS if partial else FAILURE


def registry_error_list(details: list[ErrorDetail]) -> etree._Element:
    lst = etree.Element(f"{{{RS}}}RegistryErrorList", nsmap={"rs": RS})
    for d in details:
        err = etree.SubElement(lst, f"{{{RS}}}RegistryError")
        err.set("errorCode", d.code)
        err.set("codeContext", d.context)
        err.set("severity", d.severity.value)
        if d.location:
            err.set("location", d.location)
    return lst


def error_response(form: ErrorForm, error: GatewayError) -> etree._Element:
    """The transaction's own response form carrying ``error``'s details."""
    status = response_status(error.details)
    if form is ErrorForm.REGISTRY_RESPONSE:
        el = etree.Element(f"{{{RS}}}RegistryResponse", nsmap={"rs": RS})
    elif form is ErrorForm.ADHOC_QUERY_RESPONSE:
        el = etree.Element(
            f"{{{QUERY}}}AdhocQueryResponse", nsmap={"query": QUERY, "rs": RS, "rim": RIM}
        )
    elif form is ErrorForm.RETRIEVE_RESPONSE:
        el = etree.Element(f"{{{XDS}}}RetrieveDocumentSetResponse", nsmap={"xds": XDS, "rs": RS})
        inner = etree.SubElement(el, f"{{{RS}}}RegistryResponse")
        inner.set("status", status)
        inner.append(registry_error_list(error.details))
        return el
    else:
        raise ValueError(f"no ebXML error form for {form}")
    el.set("status", status)
    el.append(registry_error_list(error.details))
    if form is ErrorForm.ADHOC_QUERY_RESPONSE:
        etree.SubElement(el, f"{{{RIM}}}RegistryObjectList")
    return el
