"""SOAP 1.2 (and 1.1) envelopes: parse inbound bytes, build outbound ones.

Only the transport's business lives here: which version, which headers must be
understood, where the body is. The body element goes to the transaction codec
untouched; attachments travel beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from profiles.errors import WSA_NS, WSSE_NS, SoapFault
from profiles.xml import parse_xml


class SoapVersion(StrEnum):
    SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
    SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

    @property
    def content_type(self) -> str:
        return "text/xml" if self is SoapVersion.SOAP11 else "application/soap+xml"


WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
# Header namespaces this gateway processes. WS-Security is verified by the XUA
# layer on the endpoints that require it.
UNDERSTOOD = frozenset({WSA_NS, WSSE_NS})
_TRUE = {"1", "true"}


@dataclass(frozen=True)
class Envelope:
    version: SoapVersion
    root: etree._Element
    headers: tuple[etree._Element, ...]
    body: etree._Element | None  # first element child of Body; None for an empty Body
    body_children: tuple[etree._Element, ...] = field(default=())


def parse_envelope(data: bytes, *, max_bytes: int) -> Envelope:
    """Parse and check an envelope; raise SoapFault for anything malformed."""
    root = parse_xml(data, max_bytes=max_bytes)
    qn = etree.QName(root)
    if qn.localname != "Envelope":
        raise SoapFault("Sender", "Message is not a SOAP envelope")
    try:
        version = SoapVersion(qn.namespace)
    except ValueError:
        raise SoapFault("VersionMismatch", "Unsupported SOAP envelope namespace") from None
    ns = version.value
    header = body = None
    for child in root:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child)
        if local.namespace != ns:
            raise SoapFault("Sender", "Unexpected element in the SOAP envelope")
        if local.localname == "Header" and header is None and body is None:
            header = child
        elif local.localname == "Body" and body is None:
            body = child
        else:
            raise SoapFault("Sender", "Unexpected element in the SOAP envelope")
    if body is None:
        raise SoapFault("Sender", "SOAP envelope has no Body")
    headers = tuple(h for h in header if isinstance(h.tag, str)) if header is not None else ()
    _check_must_understand(version, headers)
    children = tuple(c for c in body if isinstance(c.tag, str))
    return Envelope(version, root, headers, children[0] if children else None, children)


def _check_must_understand(version: SoapVersion, headers: tuple[etree._Element, ...]) -> None:
    ns = version.value
    not_understood = []
    for h in headers:
        flag = h.get(f"{{{ns}}}mustUnderstand", "").strip().lower()
        if flag in _TRUE and etree.QName(h).namespace not in UNDERSTOOD:
            not_understood.append(etree.QName(h))
    if not_understood:
        raise SoapFault(
            "MustUnderstand",
            "A mandatory header was not understood",
            not_understood=not_understood,
        )


def build_envelope(
    version: SoapVersion,
    body: etree._Element | None,
    headers: list[etree._Element] | tuple[etree._Element, ...] = (),
) -> etree._Element:
    """A new envelope holding ``headers`` and ``body`` (moved, not copied)."""
    nsmap = {"env": version.value}
    if version is SoapVersion.SOAP11:
        nsmap = {"soapenv": version.value}
    env = etree.Element(f"{{{version.value}}}Envelope", nsmap=nsmap)
    if headers:
        h = etree.SubElement(env, f"{{{version.value}}}Header")
        for el in headers:
            h.append(el)
    b = etree.SubElement(env, f"{{{version.value}}}Body")
    if body is not None:
        b.append(body)
    return env
