"""ITI-43 in -> ITI-39 out: grouping, batching per partner limit, MTOM both ways,
and real responders' answers becoming documents or one per-community error."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from gateway.client import OutboundClient
from gateway.partners.directory import PartnerDirectory
from gateway.soap import mtom
from gateway.transport import HttpResponse, response
from gateway.xca.initiating import FanOut
from profiles.transaction import Context
from profiles.xca import ig_retrieve
from profiles.xca.retrieve import DocumentRequest, retrieve_request_to_xml
from profiles.xop import XOP_INCLUDE, content_id_from_href
from tests.conftest import CONFORMANCE
from tests.gateway.xca.peers import Peers, mtom_answer, partner

HOME = "1.2.3.1"
XDS = "urn:ihe:iti:xds-b:2007"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
A, B = "1.2.3.201", "1.2.3.202"
METRIPORT = CONFORMANCE / "messages" / "metriport"


def retrieve_body(requests: list[DocumentRequest]) -> etree._Element:
    return retrieve_request_to_xml(requests)


def sent_documents(request) -> int:
    raw = b"".join(request.body)
    with mtom.read_multipart(io.BytesIO(raw), request.headers["Content-Type"],
                             max_root_bytes=10**6, max_attachment_bytes=10**6,
                             spool_dir=None) as msg:
        return len(etree.fromstring(msg.root).findall(f".//{{{XDS}}}DocumentRequest"))


def mtom_partner(oid: str):
    def handle(request):
        raw = b"".join(request.body)
        ct = request.headers["Content-Type"]
        with mtom.read_multipart(io.BytesIO(raw), ct, max_root_bytes=10**6,
                                 max_attachment_bytes=10**6, spool_dir=None) as msg:
            env = etree.fromstring(msg.root)
        resp = etree.Element(f"{{{XDS}}}RetrieveDocumentSetResponse", nsmap={"xds": XDS})
        etree.SubElement(resp, f"{{{RS}}}RegistryResponse", status=(
            "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"))
        parts = {}
        for i, dr in enumerate(env.iter(f"{{{XDS}}}DocumentRequest")):
            doc_id = dr.findtext(f"{{{XDS}}}DocumentUniqueId")
            out = etree.SubElement(resp, f"{{{XDS}}}DocumentResponse")
            for name in ("HomeCommunityId", "RepositoryUniqueId", "DocumentUniqueId"):
                etree.SubElement(out, f"{{{XDS}}}{name}").text = dr.findtext(f"{{{XDS}}}{name}")
            etree.SubElement(out, f"{{{XDS}}}mimeType").text = "text/xml"
            doc = etree.SubElement(out, f"{{{XDS}}}Document")
            etree.SubElement(doc, XOP_INCLUDE, href=f"cid:part{i}@peer")
            parts[f"part{i}@peer"] = f"<ClinicalDocument id='{doc_id}'/>".encode()
        return mtom_answer(resp, "urn:ihe:iti:2007:CrossGatewayRetrieveResponse", parts)

    return handle


@pytest.fixture
def pool():
    with ThreadPoolExecutor(8) as executor:
        yield executor


def context(fanout) -> Context:
    return Context("req-2", "urn:ihe:iti:2007:RetrieveDocumentSet", None, None, HOME,
                   datetime.now(UTC), ports=SimpleNamespace(xca=fanout))


def reconstituted(body: etree._Element, attachments) -> etree._Element:
    """The XOP-reconstituted infoset: xop:Include replaced by the part's base64."""
    body = etree.fromstring(etree.tostring(body))
    for inc in list(body.iter(XOP_INCLUDE)):
        parent = inc.getparent()
        with attachments[content_id_from_href(inc.get("href"))].open() as f:
            parent.text = base64.b64encode(f.read()).decode()
        parent.remove(inc)
    return body


def test_retrieve_is_grouped_batched_and_partial_when_a_community_fails(pool):
    peers = Peers()
    peers.behaviours[A] = mtom_partner(A)
    peers.down(B)
    directory = PartnerDirectory([partner(A, max_docs=2), partner(B)])
    fanout = FanOut(OutboundClient(peers.transport()), directory, deadline_seconds=5, pool=pool)
    wanted = [DocumentRequest(f"{A}.99", f"{A}.doc{i}", f"urn:oid:{A}") for i in range(5)]
    wanted.append(DocumentRequest(f"{B}.99", f"{B}.doc0", f"urn:oid:{B}"))
    wanted.append(DocumentRequest("9.9.99", "9.9.doc", "urn:oid:9.9.9"))
    merged = ig_retrieve.handle(tuple(wanted), context(fanout))
    batches = sorted(sent_documents(r) for r in peers.requests if r.partner.bare_oid == A)
    assert batches == [1, 2, 2]
    got = {d.document_unique_id: d for d in merged.documents}
    assert sorted(got) == [f"{A}.doc{i}" for i in range(5)]
    with got[f"{A}.doc3"].content.open() as f:
        assert f.read() == f"<ClinicalDocument id='{A}.doc3'/>".encode()
    codes = {(e.code, e.location) for e in merged.errors}
    assert codes == {("XDSUnavailableCommunity", f"urn:oid:{B}"),
                     ("XDSUnknownCommunity", "urn:oid:9.9.9")}
    reply = ig_retrieve.serialize(merged)
    content_type, body = mtom.write_multipart(
        etree.tostring(reply.body), reply.attachments, soap_media_type="application/soap+xml",
        action=None)
    with mtom.read_multipart(io.BytesIO(b"".join(body)), content_type, max_root_bytes=10**6,
                             max_attachment_bytes=10**6, spool_dir=None) as msg:
        el = etree.fromstring(msg.root)
        assert el.find(f"{{{RS}}}RegistryResponse").get("status") == (
            "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess")
        wsdl.schema("ebrs").assertValid(reconstituted(el, msg.attachments))
        assert len(msg.attachments) == 5


def test_outbound_iti39_requests_validate_and_match_the_nist_shape(pool):
    sample = etree.parse(str(CONFORMANCE / "messages" / "nist-toolkit"
                             / "xca-iti39-CrossGatewayRetrieve-request_soap12.xml"))
    theirs = sample.find(f".//{{{XDS}}}RetrieveDocumentSetRequest")
    requests = [DocumentRequest(dr.findtext(f"{{{XDS}}}RepositoryUniqueId"),
                                dr.findtext(f"{{{XDS}}}DocumentUniqueId"),
                                dr.findtext(f"{{{XDS}}}HomeCommunityId"))
                for dr in theirs.iter(f"{{{XDS}}}DocumentRequest")]
    ours = retrieve_request_to_xml(requests)
    wsdl.schema("ebrs").assertValid(ours)

    def shape(el):
        return [(etree.QName(e).localname, (e.text or "").strip()) for e in el.iter()]

    assert shape(ours) == shape(theirs)


@pytest.mark.parametrize("name", sorted(p.name for p in METRIPORT.glob("xca-iti39-mtom-*.mime")))
def test_real_mtom_answers_become_documents_or_one_error(name, pool):
    raw = (METRIPORT / name).read_bytes()
    boundary = raw.lstrip().split(b"\n", 1)[0].strip()[2:].decode()
    ct = f'multipart/related; boundary="{boundary}"; type="application/xop+xml"'
    peers = Peers()
    peers.behaviours[A] = lambda r: HttpResponse(200, {"content-type": ct}, io.BytesIO(raw))
    fanout = FanOut(OutboundClient(peers.transport()), PartnerDirectory([partner(A)]),
                    deadline_seconds=5, pool=pool)
    merged = ig_retrieve.handle((DocumentRequest("1.2", "3.4", f"urn:oid:{A}"),),
                                context(fanout))
    unavailable = [e for e in merged.errors if e.code == "XDSUnavailableCommunity"]
    assert merged.documents or unavailable, merged
    for d in merged.documents:
        with d.content.open() as f:
            assert len(f.read()) == d.content.size


@pytest.mark.parametrize("name", sorted(p.name for p in METRIPORT.glob("xca-iti39-resp-*.xml")))
def test_real_plain_answers_become_documents_or_one_error(name, pool):
    raw = (METRIPORT / name).read_bytes()
    peers = Peers()
    status = 500 if b"Fault" in raw else 200
    peers.behaviours[A] = lambda r: response(status, "application/soap+xml", raw)
    fanout = FanOut(OutboundClient(peers.transport()), PartnerDirectory([partner(A)]),
                    deadline_seconds=5, pool=pool)
    merged = ig_retrieve.handle((DocumentRequest("1.2", "3.4", f"urn:oid:{A}"),),
                                context(fanout))
    if b"Fault" in raw:
        assert [e.code for e in merged.errors] == ["XDSUnavailableCommunity"]
    else:
        assert all(e.location for e in merged.errors)
        for d in merged.documents:
            assert d.home_community_id.startswith("urn:oid:")
            assert "urn:oid:" not in d.home_community_id[8:]


def test_local_and_partner_documents_in_one_retrieve(pool):
    from gateway.xca.wiring import LocalRepository
    from tests.profiles.xds.fake_repository import REPOSITORY_ID, FakeRepository

    repo = FakeRepository()
    repo.put("1.2.3.local.1", b"local bytes", "text/plain")
    peers = Peers()
    peers.behaviours[A] = mtom_partner(A)
    fanout = FanOut(OutboundClient(peers.transport()), PartnerDirectory([partner(A)]),
                    deadline_seconds=5, pool=pool,
                    repository=LocalRepository(repo, HOME))
    merged = ig_retrieve.handle((
        DocumentRequest(REPOSITORY_ID, "1.2.3.local.1", f"urn:oid:{HOME}"),
        DocumentRequest(REPOSITORY_ID, "1.2.3.local.missing"),
        DocumentRequest(f"{A}.99", f"{A}.doc0", f"urn:oid:{A}"),
    ), context(fanout))
    got = {d.document_unique_id: d for d in merged.documents}
    assert sorted(got) == [f"{A}.doc0", "1.2.3.local.1"]
    with got["1.2.3.local.1"].content.open() as f:
        assert f.read() == b"local bytes"
    assert got["1.2.3.local.1"].home_community_id == f"urn:oid:{HOME}"
    assert [e.code for e in merged.errors] == ["XDSMissingDocument"]
