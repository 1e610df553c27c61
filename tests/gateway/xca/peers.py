"""In-process partner communities for fan-out tests (a MockTransport handler).

Each fake community has a behaviour: answer documents, be down, time out, answer
a SOAP fault, answer garbage, or answer only after the test releases it (after
the fan-out deadline). Requests are recorded for shape checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from gateway.partners.model import Partner, endpoints_for
from gateway.soap import mtom
from gateway.transport import (
    HttpRequest,
    HttpResponse,
    MockTransport,
    PartnerTimeout,
    PartnerUnreachable,
    response,
)
from profiles.errors import WSA_NS
from profiles.transaction import OutgoingAttachment
from profiles.xds.ebrim import adhoc_query_response_to_xml
from tests.profiles.xds.builders import document_entry

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
FAKE_CA = b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"


def partner(oid: str, *, timeout: float = 5.0, max_docs: int = 10, **quirks) -> Partner:
    from gateway.partners.model import Quirks

    return Partner(f"urn:oid:{oid}", f"community {oid}",
                   endpoints_for(f"https://peer-{oid}.example"), FAKE_CA, timeout, max_docs,
                   Quirks(**quirks), f"https://peer-{oid}.example")


def envelope(body: etree._Element, action: str) -> bytes:
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"s": SOAP12, "a": WSA_NS})
    header = etree.SubElement(env, f"{{{SOAP12}}}Header")
    etree.SubElement(header, f"{{{WSA_NS}}}Action").text = action
    etree.SubElement(env, f"{{{SOAP12}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def documents(oid: str, n: int) -> list:
    return [document_entry(f"urn:uuid:00000000-0000-4000-8000-{oid.replace('.', '')[-6:]}{i:06d}",
                           unique_id=f"{oid}.{i}", repository_unique_id=f"{oid}.99")
            for i in range(n)]


def query_answer(oid: str, n: int) -> bytes:
    body = adhoc_query_response_to_xml(documents(oid, n))
    return envelope(body, "urn:ihe:iti:2007:CrossGatewayQueryResponse")


FAULT = (
    f'<s:Envelope xmlns:s="{SOAP12}"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value>'
    "</s:Code><s:Reason><s:Text xml:lang=\"en\">Expected AdhocQueryRequest</s:Text></s:Reason>"
    "</s:Fault></s:Body></s:Envelope>"
).encode()


@dataclass
class Peers:
    """Behaviour per bare OID; ``release`` lets the late peers answer."""

    behaviours: dict[str, Callable[[HttpRequest], HttpResponse]] = field(default_factory=dict)
    requests: list[HttpRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    late_answered: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: HttpRequest) -> HttpResponse:
        with self.lock:
            self.requests.append(request)
        return self.behaviours[request.partner.bare_oid](request)

    def transport(self) -> MockTransport:
        return MockTransport(self.handler)

    # behaviours ---------------------------------------------------------------------

    def answers(self, oid: str, n: int) -> None:
        body = query_answer(oid, n)
        self.behaviours[oid] = lambda r: response(200, "application/soap+xml", body)

    def down(self, oid: str) -> None:
        def refuse(r):
            raise PartnerUnreachable("connection failed: [Errno 111] Connection refused")

        self.behaviours[oid] = refuse

    def times_out(self, oid: str) -> None:
        def wait(r: HttpRequest):
            # What a socket read timeout does: give up after the call's own timeout.
            self.release.wait(r.timeout)
            raise PartnerTimeout(f"no answer within {r.timeout:g} s")

        self.behaviours[oid] = wait

    def faults(self, oid: str) -> None:
        self.behaviours[oid] = lambda r: response(500, "application/soap+xml", FAULT)

    def garbage(self, oid: str) -> None:
        self.behaviours[oid] = lambda r: response(200, "text/html", b"<html>502 Bad Gateway")

    def late(self, oid: str, n: int) -> None:
        body = query_answer(oid, n)

        def after_release(r):
            self.release.wait(30)
            try:
                return response(200, "application/soap+xml", body)
            finally:
                self.late_answered.set()

        self.behaviours[oid] = after_release


def mtom_answer(body: etree._Element, action: str, parts: dict[str, bytes]) -> HttpResponse:
    """An MTOM HttpResponse: ``parts`` maps Content-ID -> bytes."""
    import io

    atts = [OutgoingAttachment(cid, "text/xml", (lambda d=data: iter([d])), len(data))
            for cid, data in parts.items()]
    content_type, payload = mtom.write_multipart(
        envelope(body, action), atts, soap_media_type="application/soap+xml", action=action)
    return HttpResponse(200, {"content-type": content_type}, io.BytesIO(b"".join(payload)))


def with_quirks(p: Partner, **quirks) -> Partner:
    return replace(p, quirks=replace(p.quirks, **quirks))
