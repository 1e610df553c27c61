"""Outbound envelopes: WS-Addressing, and a signed XUA header shaped by the partner's quirks;
the whole envelope validates against the official schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from certs.authority import create_authority, issue
from gateway.client import OutboundClient
from gateway.xca.wiring import xua_security
from profiles.errors import WSA_NS, WSSE_NS
from profiles.xca.query import ITI38_ACTION, stored_query_to_xml
from profiles.xua import Code, Principal, SigningCredentials
from tests.gateway.xca.peers import partner
from tests.gateway.xca.test_fanout import find_documents

DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


@pytest.fixture(scope="module")
def credentials() -> SigningCredentials:
    leaf = issue(create_authority(), "our-gateway")
    return SigningCredentials.from_pem(leaf.private_key_pem(), leaf.certificate_pem())


PRINCIPAL = Principal(
    subject_id="Dr. Jane Smith", organization="VA", organization_id="urn:oid:1.2.3.1",
    home_community_id="urn:oid:1.2.3.1",
    role=Code("112247003", "2.16.840.1.113883.6.96", "Medical doctor"),
    purpose_of_use=Code("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment"),
)


@pytest.mark.parametrize("quirks,algorithm,purpose", [
    ({}, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "PurposeOfUse"),
    ({"signature_hash": "sha1", "purpose_element": "PurposeForUse"},
     "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "PurposeForUse"),
])
def test_outbound_envelope_carries_a_header_shaped_by_quirks(credentials, quirks, algorithm,
                                                            purpose):
    clock = SimpleNamespace(now=lambda: datetime.now(UTC))
    client = OutboundClient(None, security=xua_security(credentials, PRINCIPAL, clock))
    p = partner("1.2.3.77", **quirks)
    url = p.endpoint("ITI-38")
    env, message_id = client.envelope(p, url, ITI38_ACTION, stored_query_to_xml(find_documents()))
    env = etree.fromstring(etree.tostring(env))  # as the partner parses it
    wsdl.schema("all").assertValid(env)
    header = env.find("{http://www.w3.org/2003/05/soap-envelope}Header")
    assert header.findtext(f"{{{WSA_NS}}}Action") == ITI38_ACTION
    assert header.findtext(f"{{{WSA_NS}}}MessageID") == message_id
    assert header.findtext(f"{{{WSA_NS}}}To") == url
    security = header.find(f"{{{WSSE_NS}}}Security")
    methods = {m.get("Algorithm") for m in security.iter(f"{{{DS}}}SignatureMethod")}
    assert methods == {algorithm}
    assert security.findtext(f".//{{{SAML}}}Audience") == url
    assert any(etree.QName(e).localname == purpose for e in security.iter())
