"""The responding gateway in process: /xca/query (ITI-38) and /xca/retrieve (ITI-39) over
the real registry, repository and patient index (SQLite, or PostgreSQL when
GATEWAY_TEST_DATABASE_URL is set). XUA is switched off where a test is about XCA logic;
one test sends a real signed assertion and one is refused without it."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

import wsdl
from certs.authority import create_authority, issue
from gateway.app import create_app
from gateway.client import OutboundClient
from gateway.config import config_from_dict
from gateway.repository.cli import DEFAULTS, _Code, build_submission
from gateway.soap import mtom
from gateway.xca.wiring import xua_security
from profiles.errors import WSA_NS, WSSE_NS
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord, parse_cx
from profiles.transaction import Attachment
from profiles.xca.query import ITI38_ACTION, stored_query_to_xml
from profiles.xca.retrieve import DocumentRequest, retrieve_request_to_xml
from profiles.xds.iti41 import ProvideAndRegisterRequest, provide_and_register
from profiles.xds.storedquery import DE, QueryName, build
from profiles.xds.values import dtm_from_datetime
from profiles.xop import XOP_INCLUDE, content_id_from_href
from profiles.xua import Code, Principal, SigningCredentials
from tests.conftest import make_config_dict
from tests.gateway.xca.peers import partner

S12 = "http://www.w3.org/2003/05/soap-envelope"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XDS = "urn:ihe:iti:xds-b:2007"
HOME_OID = "1.3.6.1.4.1.21367.2011.2.1"  # make_config_dict's community
HOME = f"urn:oid:{HOME_OID}"
OURS = "D-77^^^&1.3.6.1.4.1.21367.2011.2.1.9&ISO"
THEIRS = "V-12^^^&2.999.2.1&ISO"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
ITI39_ACTION = "urn:ihe:iti:2007:CrossGatewayRetrieve"
DOCUMENT = b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>XCA</title></ClinicalDocument>"


def start(tmp_path: Path, database_url: str, *, xua: bool, tls=None):
    overrides = {"tls": tls} if tls else {}
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url, **overrides),
                           base=tmp_path, environ={})
    app = create_app(cfg)
    rt = app.extensions["gateway"]
    if not xua:
        rt.security = None  # these tests are about XCA, not XUA
    rt.ports.patients.add(PatientRecord(parse_cx(OURS)))
    return app


def register(app, data: bytes = DOCUMENT) -> str:
    """One document of OURS through ITI-41's own code path; its uniqueId."""
    rt = app.extensions["gateway"]
    codes = {k: _Code().convert(v, None, None) for k, v in DEFAULTS.items()}
    now = datetime.now(UTC)
    submission = build_submission(patient=OURS, title="test", mime_type="text/xml", codes=codes,
                                  now=now, source_id=HOME_OID)
    content = Attachment("doc", "text/xml", len(data), hashlib.sha1(data).hexdigest(),
                         partial(io.BytesIO, data))
    provide_and_register(ProvideAndRegisterRequest(submission, {"Document01": content}),
                         rt.ports.repository, actor="repository", time=dtm_from_datetime(now))
    return submission.document_entries[0].unique_id


@pytest.fixture
def app(tmp_path: Path, database_url: str):
    application = start(tmp_path, database_url, xua=False)
    yield application
    application.extensions["gateway"].database.dispose()


def envelope(action: str, body: etree._Element) -> bytes:
    return (f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
            f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
            "<wsa:MessageID>urn:uuid:0f1e2d3c-0000-4000-8000-000000000038</wsa:MessageID>"
            "</e:Header><e:Body>").encode() + etree.tostring(body) + b"</e:Body></e:Envelope>"


def read(resp) -> tuple[etree._Element, etree._Element, dict[str, bytes]]:
    """(envelope, Body's first child with XOP resolved to base64, MTOM parts)."""
    data, ct = resp.get_data(), resp.headers["Content-Type"]
    resp.close()
    parts: dict[str, bytes] = {}
    if ct.startswith("multipart/related"):
        with mtom.read_multipart(io.BytesIO(data), ct, max_root_bytes=1 << 22,
                                 max_attachment_bytes=1 << 22, spool_dir=None) as msg:
            data = msg.root
            for cid, att in msg.attachments.items():
                with att.open() as f:
                    parts[cid] = f.read()
    env = etree.fromstring(data)
    body = env.find(f"{{{S12}}}Body")[0]
    for inc in list(body.iter(XOP_INCLUDE)):
        parent = inc.getparent()
        parent.remove(inc)
        parent.text = base64.b64encode(parts[content_id_from_href(inc.get("href"))]).decode()
    return env, body, parts


def xca_query(client, query, **environ) -> etree._Element:
    resp = client.post("/xca/query", data=envelope(ITI38_ACTION, stored_query_to_xml(query)),
                       content_type="application/soap+xml", environ_base=environ)
    assert resp.status_code == 200, resp.data[:800]
    env, body, _ = read(resp)
    assert env.findtext(f".//{{{WSA_NS}}}Action") == ITI38_ACTION + "Response"
    wsdl.schema("ebrs").assertValid(body)
    return body


def find(patient: str, home: str | None = None):
    return build(QueryName.FIND_DOCUMENTS, {DE + "PatientId": f"'{patient}'",
                                            DE + "Status": [APPROVED]}, home=home)


def errors(body) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in body.iter(f"{{{RS}}}RegistryError")]


def test_find_documents_answers_our_documents_with_our_home(app):
    uid = register(app)
    body = xca_query(app.test_client(), find(OURS))
    assert body.get("status").endswith(":Success")
    [eo] = body.iter(f"{{{RIM}}}ExtrinsicObject")
    assert eo.get("home") == HOME
    assert uid in {e.get("value") for e in eo.iter(f"{{{RIM}}}ExternalIdentifier")}


def test_query_for_another_community_is_unknown_community_at_our_location(app):
    register(app)
    body = xca_query(app.test_client(), find(OURS, home="urn:oid:2.999.9"))
    assert body.get("status").endswith(":Failure")
    assert errors(body) == [("XDSUnknownCommunity", HOME)]
    assert body.findall(f".//{{{RIM}}}ExtrinsicObject") == []


def test_id_based_query_needs_home(app):
    uid = register(app)
    client = app.test_client()
    no_home = build(QueryName.GET_DOCUMENTS, {DE + "UniqueId": [uid]})
    assert errors(xca_query(client, no_home)) == [("XDSMissingHomeCommunityId", HOME)]
    named = build(QueryName.GET_DOCUMENTS, {DE + "UniqueId": [uid]}, home=HOME)
    [eo] = xca_query(client, named).iter(f"{{{RIM}}}ExtrinsicObject")
    assert eo.get("home") == HOME


def test_partner_id_listed_with_our_patient_is_translated(app):
    register(app)
    patients = app.extensions["gateway"].ports.patients
    patients.add(PatientRecord(parse_cx(OURS), Person(other_ids=(OtherId(parse_cx(THEIRS)),))))
    body = xca_query(app.test_client(), find(THEIRS))
    assert len(body.findall(f".//{{{RIM}}}ExtrinsicObject")) == 1


def test_partner_id_correlated_with_our_patient_is_translated(app):
    register(app)
    app.extensions["gateway"].ports.patients.record_correlation(
        parse_cx(OURS), II("2.999.2.1", "V-12"), "urn:oid:2.999.2")
    body = xca_query(app.test_client(), find(THEIRS))
    assert len(body.findall(f".//{{{RIM}}}ExtrinsicObject")) == 1


def test_unknown_patient_finds_nothing(app):
    register(app)
    body = xca_query(app.test_client(), find("NOBODY^^^&2.999.2.1&ISO"))
    assert body.get("status").endswith(":Success") and errors(body) == []
    assert body.findall(f".//{{{RIM}}}ExtrinsicObject") == []


def xca_retrieve(client, docs) -> tuple[etree._Element, dict[str, bytes], str]:
    resp = client.post("/xca/retrieve", data=envelope(ITI39_ACTION, retrieve_request_to_xml(docs)),
                       content_type="application/soap+xml")
    assert resp.status_code == 200
    ct = resp.headers["Content-Type"]
    env, body, parts = read(resp)
    assert env.findtext(f".//{{{WSA_NS}}}Action") == ITI39_ACTION + "Response"
    wsdl.schema("ebrs").assertValid(body)
    return body, parts, ct


def test_retrieve_streams_our_document_as_mtom_with_our_home(app):
    uid = register(app)
    repo = app.extensions["gateway"].ports.repository.repository_unique_id
    body, parts, ct = xca_retrieve(app.test_client(), [
        DocumentRequest(repo, uid, HOME),
        DocumentRequest(repo, uid + ".404", HOME),
        DocumentRequest(repo, uid, None),
    ])
    assert ct.startswith("multipart/related")
    assert body.find(f"{{{RS}}}RegistryResponse").get("status").endswith(":PartialSuccess")
    assert errors(body) == [("XDSMissingHomeCommunityId", HOME), ("XDSMissingDocument", HOME)]
    [dr] = body.iter(f"{{{XDS}}}DocumentResponse")
    assert dr.findtext(f"{{{XDS}}}HomeCommunityId") == HOME
    assert dr.findtext(f"{{{XDS}}}DocumentUniqueId") == uid
    assert list(parts.values()) == [DOCUMENT]


def test_retrieve_for_another_community_is_refused(app):
    uid = register(app)
    repo = app.extensions["gateway"].ports.repository.repository_unique_id
    body, parts, _ = xca_retrieve(app.test_client(), [DocumentRequest(repo, uid, "2.999.9")])
    assert body.find(f"{{{RS}}}RegistryResponse").get("status").endswith(":Failure")
    assert errors(body) == [("XDSUnknownCommunity", HOME)] and parts == {}


# -- XUA: the responding routes face partners ---------------------------------------------


@pytest.fixture
def signed_app(tmp_path: Path, database_url: str):
    """A gateway whose trust store is a test CA; the partner's certificate is from it."""
    ca = create_authority("partner test CA")
    leaf = issue(ca, "localhost")
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem())
    (tmp_path / "gw.pem").write_bytes(leaf.certificate_pem())
    (tmp_path / "gw-key.pem").write_bytes(leaf.private_key_pem())
    tls = {"certificate": "gw.pem", "private_key": "gw-key.pem", "trust_store": "ca.pem"}
    application = start(tmp_path, database_url, xua=True, tls=tls)
    yield application, leaf
    application.extensions["gateway"].database.dispose()


class PeerSocket:
    """What gunicorn's TLS socket tells the view: the verified client certificate."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False):
        return self.der if binary_form else {"subject": ((("commonName", "localhost"),),)}


def test_signed_assertion_is_verified_before_the_query_runs(signed_app):
    app, leaf = signed_app
    register(app)
    credentials = SigningCredentials.from_pem(leaf.private_key_pem(), leaf.certificate_pem())
    principal = Principal(
        subject_id="Dr. Jane Smith", organization="VA", organization_id="urn:oid:2.999.2",
        home_community_id="urn:oid:2.999.2",
        role=Code("112247003", "2.16.840.1.113883.6.96", "Medical doctor"),
        purpose_of_use=Code("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment"))
    clock = SimpleNamespace(now=lambda: datetime.now(UTC))
    client = OutboundClient(None, security=xua_security(credentials, principal, clock))
    url = "http://localhost/xca/query"
    env, _ = client.envelope(partner(HOME_OID), url, ITI38_ACTION, stored_query_to_xml(find(OURS)))
    socket = PeerSocket(leaf.certificate.public_bytes(Encoding.DER))
    test_client = app.test_client()
    resp = test_client.post("/xca/query", data=etree.tostring(env),
                            content_type="application/soap+xml",
                            environ_base={"gunicorn.socket": socket})
    assert resp.status_code == 200, resp.data[:800]
    _, body, _ = read(resp)
    wsdl.schema("ebrs").assertValid(body)
    assert [eo.get("home") for eo in body.iter(f"{{{RIM}}}ExtrinsicObject")] == [HOME]

    # The same request without its assertion is refused before the registry is asked.
    header = env.find(f"{{{S12}}}Header")
    header.remove(header.find(f"{{{WSSE_NS}}}Security"))
    refused = test_client.post("/xca/query", data=etree.tostring(env),
                               content_type="application/soap+xml",
                               environ_base={"gunicorn.socket": socket})
    assert refused.status_code == 400
    fault = etree.fromstring(refused.get_data())
    sub = fault.find(f".//{{{S12}}}Subcode/{{{S12}}}Value")
    prefix, local = sub.text.split(":")
    assert (sub.nsmap[prefix], local) == (WSSE_NS, "InvalidSecurity")
    refused.close()
