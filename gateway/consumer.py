"""What a local document consumer sends a gateway: ITI-55, ITI-18 and ITI-43 over mutual TLS,
and their answers read back into models (the federation demo and its tests use it).

requests is used with ``verify=`` the gateway's CA on every call and sessions made by
``gateway.demo.mtls_session`` (``trust_env = False``): REQUESTS_CA_BUNDLE must not
replace our CA with the public web bundle.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import requests
from lxml import etree

from gateway.demo import DemoFailed, Gateway
from profiles.errors import WSA_NS, ErrorDetail
from profiles.xml import parse_xml

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
ITI18_ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43_ACTION = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI55_ACTION = "urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"


def envelope(action: str, to: str, body: etree._Element | bytes) -> bytes:
    """A SOAP 1.2 envelope with WS-Addressing around ``body``."""
    payload = body if isinstance(body, bytes) else etree.tostring(body)
    action, to = escape(action), escape(to)
    return (
        f'<s:Envelope xmlns:s="{SOAP12_NS}" xmlns:a="{WSA_NS}"><s:Header>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address>"
        f'</a:ReplyTo><a:To s:mustUnderstand="true">{to}</a:To></s:Header><s:Body>'
    ).encode() + payload + b"</s:Body></s:Envelope>"


def find_documents(patient_id: str) -> bytes:
    """An ITI-18 FindDocuments AdhocQueryRequest for ``patient_id``'s approved documents."""
    return f"""<query:AdhocQueryRequest xmlns:query="{QUERY_NS}"
    xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>
  <rim:AdhocQuery id="{FIND_DOCUMENTS}">
    <rim:Slot name="$XDSDocumentEntryPatientId">
      <rim:ValueList><rim:Value>'{escape(patient_id)}'</rim:Value></rim:ValueList>
    </rim:Slot>
    <rim:Slot name="$XDSDocumentEntryStatus">
      <rim:ValueList>
        <rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>
      </rim:ValueList>
    </rim:Slot>
  </rim:AdhocQuery>
</query:AdhocQueryRequest>""".encode()


@dataclass
class SoapAnswer:
    status: int
    action: str | None
    body: etree._Element | None  # the Body's first child
    parts: dict[str, Any] = field(default_factory=dict)  # MTOM attachments by Content-ID
    seconds: float = 0.0
    close: Any = None

    def fault(self) -> str | None:
        if self.body is None or self.body.tag != f"{{{SOAP12_NS}}}Fault":
            return None
        return self.body.findtext(f".//{{{SOAP12_NS}}}Text") or "SOAP fault"


def post(session: requests.Session, gateway: Gateway, path: str, action: str,
         body: etree._Element | bytes) -> SoapAnswer:
    """POST a SOAP 1.2 request; read the answer, plain or MTOM (parts kept until close)."""
    from gateway.soap import mtom

    url = f"{gateway.base_url}{path}"
    started = time.perf_counter()
    resp = session.post(url, data=envelope(action, url, body), timeout=60,
                        verify=str(gateway.cert("ca.pem")),
                        headers={"Content-Type": "application/soap+xml; charset=UTF-8; "
                                                 f'action="{action}"'})
    seconds = time.perf_counter() - started
    content_type = resp.headers.get("Content-Type", "")
    parts: dict[str, Any] = {}
    close = None
    if content_type.startswith("multipart/related"):
        message = mtom.read_multipart(io.BytesIO(resp.content), content_type,
                                      max_root_bytes=1 << 24, max_attachment_bytes=1 << 28,
                                      spool_dir=None)
        root, parts, close = message.root, message.attachments, message.close
    elif content_type.startswith("application/soap+xml"):
        root = resp.content
    else:
        raise DemoFailed(f"{path}: HTTP {resp.status_code} with {content_type!r}")
    env = parse_xml(root)
    header, body_el = env.find(f"{{{SOAP12_NS}}}Header"), env.find(f"{{{SOAP12_NS}}}Body")
    return SoapAnswer(
        status=resp.status_code,
        action=header.findtext(f"{{{WSA_NS}}}Action") if header is not None else None,
        body=body_el[0] if body_el is not None and len(body_el) else None,
        parts=parts, seconds=seconds, close=close)




@dataclass(frozen=True)
class Discovery:
    """An /ig/xcpd answer: the communities that know the person, and their ids for them."""

    code: str  # queryResponseCode: OK, NF, AE, QE
    matches: tuple[tuple[str, str, int | None], ...]  # (homeCommunityId, their id CX, score)
    seconds: float


def discover(session: requests.Session, gateway: Gateway, *, given: str, family: str,
             birth: str, gender: str, patient_id: str,
             path: str = "/ig/xcpd") -> Discovery:
    """ITI-55 through ``gateway``'s initiating gateway: demographics plus our own id (CX),
    so the gateway can verify each community's match against its own record."""
    from profiles.hl7v3.datatypes import II, PN, TS
    from profiles.hl7v3.datatypes import gender as gender_code
    from profiles.hl7v3.wrapper import Device
    from profiles.pix.ports import parse_cx
    from profiles.xcpd.models import PatientDiscoveryQuery, QueryParameters
    from profiles.xcpd.query import patient_discovery_query_to_xml
    from profiles.xcpd.response import parse_patient_discovery_response

    ours = parse_cx(patient_id)
    params = QueryParameters(names=(PN.of(given, family),), gender=gender_code(gender),
                             birth_time=TS(birth), ids=(ours,))
    query = PatientDiscoveryQuery.new(params, sender=Device(II(f"{ours.root}.50")),
                                      receiver=Device(II(ours.root)),
                                      assigning_authority=ours.root)
    answer = post(session, gateway, path, ITI55_ACTION, patient_discovery_query_to_xml(query))
    if answer.fault() or answer.body is None:
        raise DemoFailed(f"{path}: HTTP {answer.status}, {answer.fault() or 'empty body'}")
    response = parse_patient_discovery_response(answer.body)
    matches = tuple(sorted((m.home_community_id, str(m.patient.id), m.score)
                           for m in response.matches))
    return Discovery(str(response.query_response_code), matches, answer.seconds)


@dataclass(frozen=True)
class QueryOutcome:
    """An ITI-18 answer: status tail (Success...), errors, the DocumentEntries, the body."""

    status: str
    errors: tuple[ErrorDetail, ...]
    entries: tuple[Any, ...]  # profiles.xds.metadata.DocumentEntry
    body: etree._Element
    seconds: float

    def by_community(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for e in self.entries:
            out.setdefault(e.home_community_id or "", []).append(e)
        return out


def query(session: requests.Session, gateway: Gateway, patient_id: str,
          path: str = "/ig/query") -> QueryOutcome:
    """ITI-18 FindDocuments for ``patient_id`` at ``path``; DemoFailed on a SOAP fault."""
    from profiles.xds.ebrim import parse_adhoc_query_response
    from profiles.xds.metadata import DocumentEntry

    answer = post(session, gateway, path, ITI18_ACTION, find_documents(patient_id))
    if answer.fault() or answer.body is None:
        raise DemoFailed(f"{path}: HTTP {answer.status}, {answer.fault() or 'empty body'}")
    if answer.action != ITI18_ACTION + "Response":
        raise DemoFailed(f"{path}: answered with action {answer.action}")
    response, objects = parse_adhoc_query_response(answer.body)
    entries = tuple(o for o in objects if isinstance(o, DocumentEntry))
    return QueryOutcome(response.status.value.rsplit(":", 1)[-1], response.errors, entries,
                        answer.body, answer.seconds)


@dataclass(frozen=True)
class Retrieved:
    home_community_id: str
    repository_unique_id: str
    document_unique_id: str
    mime_type: str
    content: bytes


@dataclass(frozen=True)
class RetrieveOutcome:
    status: str
    errors: tuple[ErrorDetail, ...]
    documents: tuple[Retrieved, ...]
    body: etree._Element
    seconds: float


def retrieve(session: requests.Session, gateway: Gateway, entries: Sequence[Any],
             path: str = "/ig/retrieve") -> RetrieveOutcome:
    """ITI-43 for ``entries`` (DocumentEntries naming their community and repository)."""
    from profiles.xca.retrieve import (
        DocumentRequest,
        parse_retrieve_response,
        retrieve_request_to_xml,
    )

    request = retrieve_request_to_xml([
        DocumentRequest(e.repository_unique_id, e.unique_id, e.home_community_id)
        for e in entries])
    answer = post(session, gateway, path, ITI43_ACTION, request)
    try:
        if answer.fault() or answer.body is None:
            raise DemoFailed(f"{path}: HTTP {answer.status}, {answer.fault() or 'empty body'}")
        result = parse_retrieve_response(answer.body, answer.parts, home_community_id=None)
        documents = []
        for d in result.documents:
            with d.content.open() as f:
                documents.append(Retrieved(d.home_community_id or "", d.repository_unique_id,
                                           d.document_unique_id, d.mime_type, f.read()))
    finally:
        if answer.close is not None:
            answer.close()
    return RetrieveOutcome(result.status.rsplit(":", 1)[-1], tuple(result.errors),
                           tuple(documents), answer.body, answer.seconds)
