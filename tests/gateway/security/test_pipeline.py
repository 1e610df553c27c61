"""The gate inside ``handle_soap`` and as ``build_security`` builds it for a worker: the
handler runs only after verification and sees the Principal; a refusal is a Sender fault
with the WS-Security subcode, nothing more, and an ATNA Security Alert in the trail."""

from __future__ import annotations

import base64
import io
from dataclasses import replace

import pytest
import sqlalchemy as sa
from lxml import etree

from gateway.audit.models import AuditEntry
from gateway.config import Config, Tls, config_from_dict
from gateway.dispatch import Route
from gateway.security import XuaSettings, build_security
from gateway.soap.service import Limits, SoapRequest, handle_soap
from profiles.errors import WSSE_NS
from profiles.transaction import ErrorForm, Transaction
from profiles.xml import parse_xml
from tests.conftest import make_config_dict
from tests.gateway.security.messages import req_from, signed, without_security

S12 = "http://www.w3.org/2003/05/soap-envelope"
LIMITS = Limits(max_message_bytes=1 << 20, max_attachment_bytes=1 << 20)
RETRIEVE = "urn:ihe:iti:2007:CrossGatewayRetrieve"  # the action of CONNECT's wire sample


@pytest.fixture
def handled() -> list:
    return []


@pytest.fixture
def xca_route(handled) -> Route:
    def handle(request, ctx):
        handled.append(ctx.principal)
        return request

    def serialize(_result):
        return etree.Element("{urn:test}Done")

    txn = Transaction(
        "ITI-39",
        "Cross Gateway Retrieve",
        RETRIEVE,
        RETRIEVE + "Response",
        ErrorForm.RETRIEVE_RESPONSE,
        parse=lambda body, ctx: body.tag,
        handle=handle,
        serialize=serialize,
    )
    return Route("/xca/retrieve", "responding_gateway", "xca-retrieve.wsdl", (txn,))


def post(gate, route: Route, data: bytes, identity):
    transport = req_from(identity)
    req = SoapRequest(
        route.path,
        "application/soap+xml",
        io.BytesIO(data),
        len(data),
        None,
        transport.request_id,
        transport.peer_subject,
    )
    object.__setattr__(req, "peer_certificate", transport.peer_certificate)  # proposed field
    response = handle_soap(
        route, req, home_community_id="urn:oid:9.9", limits=LIMITS, security=gate
    )
    return response, parse_xml(b"".join(response.body))


def subcode(doc: etree._Element) -> tuple[str, str]:
    value = doc.find(f".//{{{S12}}}Subcode/{{{S12}}}Value")
    prefix, local = value.text.split(":")
    return value.nsmap[prefix], local


def described(entry: AuditEntry) -> str:
    """What the record says: its XML with the (base64) alert descriptions decoded."""
    doc = etree.fromstring(entry.xml)
    details = [base64.b64decode(d.get("value")) for d in doc.iter("ParticipantObjectDetail")]
    return entry.xml.decode() + " " + b" ".join(details).decode()


def security_alerts(db) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.scalars(sa.select(AuditEntry).where(AuditEntry.event_id == "110113")))


def test_the_handler_runs_after_verification_and_sees_the_principal(
    make_gate, pki, xca_route, handled
):
    response, doc = post(make_gate(), xca_route, signed(pki), pki.partner)
    assert response.status == 200 and doc.find(".//{urn:test}Done") is not None
    [principal] = handled
    assert principal.subject_id == "Karl S Skagerberg"
    assert principal.purpose_of_use.code == "PUBLICHEALTH"


@pytest.mark.parametrize(
    "case, wsse",
    [
        ("no header", "InvalidSecurity"),
        ("attacker", "FailedAuthentication"),
        ("tampered", "FailedCheck"),
    ],
)
def test_a_refusal_is_a_sender_fault_and_no_handler_runs(
    make_gate, pki, xca_route, handled, case, wsse
):
    data = {
        "no header": lambda: without_security(pki),
        "attacker": lambda: signed(pki, signer=pki.attacker, key_info="x509"),
        "tampered": lambda: signed(pki).replace(b"PUBLICHEALTH", b"TREATMENT"),
    }[case]()
    response, doc = post(make_gate(), xca_route, data, pki.partner)
    assert response.status == 400 and response.outcome == "fault"
    assert doc.findtext(f".//{{{S12}}}Code/{{{S12}}}Value").endswith(":Sender")
    assert subcode(doc) == (WSSE_NS, wsse)
    reason = doc.findtext(f".//{{{S12}}}Reason/{{{S12}}}Text")
    assert "attacker" not in reason and "CN=" not in reason and "PUBLICHEALTH" not in reason
    assert handled == []


@pytest.fixture
def config(tmp_path, database_url, trust_store) -> Config:
    """A real gateway Config whose trust store is the XUA test CA."""
    base = config_from_dict(
        make_config_dict(tmp_path / "data", database_url), base=tmp_path, environ={}
    )
    return replace(base, tls=Tls(trust_store, trust_store, trust_store))


def test_a_worker_gate_audits_each_refusal(db, config, pki, xca_route, handled):
    gate = build_security(config, db)
    post(gate, xca_route, signed(pki, signer=pki.attacker, key_info="x509"), pki.partner)
    post(gate, xca_route, without_security(pki), pki.partner)
    alerts = security_alerts(db)
    assert [(a.event_type, a.outcome) for a in alerts] == [("110143", 4)] * 2
    texts = [described(a) for a in alerts]
    assert any("XUA FailedAuthentication" in t and "does not chain" in t for t in texts)
    assert any("XUA InvalidSecurity" in t and "no wsse:Security header" in t for t in texts)
    assert all("/xca/retrieve" in t and pki.partner.dn.split(",")[0] in t for t in texts)
    assert handled == []
    response, _ = post(gate, xca_route, signed(pki), pki.partner)
    assert response.status == 200 and len(security_alerts(db)) == 2  # accepted: no alert


def test_switching_xua_off_is_audited_at_every_start(db, config):
    off = XuaSettings(required_on_partner_endpoints=False)
    build_security(config, db, settings=off)
    build_security(config, db, settings=off)
    build_security(config, db)  # on: nothing to report
    with db.session() as session:
        changes = session.scalars(
            sa.select(AuditEntry).where(AuditEntry.event_type == "110129")
        ).all()
    assert len(changes) == 2
    assert all("XUA IS OFF ON PARTNER ENDPOINTS" in described(c) for c in changes)
