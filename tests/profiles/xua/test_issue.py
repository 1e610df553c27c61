"""Issued headers: schema-valid, verifiable by plain signxml with only our certificate,
accepted by our own verifier, and reused from the cache only when asked."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

from gateway.soap.envelope import SoapVersion, build_envelope
from profiles.xml import parse_xml, to_bytes
from profiles.xua import (
    AssertionCache,
    AuthzDecision,
    Code,
    IssuePolicy,
    Principal,
    SecurityRefused,
    SigningCredentials,
    TrustAnchors,
    XuaPolicy,
    build_security_header,
    issue_assertion,
    verify_security_header,
)
from profiles.xua.assertion import HL7_NS, NHIN_PURPOSE, SNOMED_CT
from tests.conftest import CONFORMANCE
from tests.profiles.xua.conftest import MemoryReplayCache
from tests.profiles.xua.fixed_time import FixedClock
from tests.profiles.xua.messages import NS, q

AUDIENCE = "https://partner.example.org/xca/query"
PRINCIPAL = Principal(
    subject_id="Jane Q Clinician",
    organization="Test Hospital",
    organization_id="urn:oid:1.3.6.1.4.1.21367.2011.2.1",
    home_community_id="urn:oid:1.3.6.1.4.1.21367.2011.2",
    role=Code("112247003", SNOMED_CT, "SNOMED_CT", "Medical doctor"),
    purpose_of_use=Code("TREATMENT", NHIN_PURPOSE, "nhin-purpose", "Treatment"),
    name_id="CN=Jane Q Clinician,O=Test Hospital,C=US",
    resource_id="12345^^^&1.2.840.113619.6.197&ISO",
    npi="1234567893",
    consent_policies=("urn:oid:1.3.6.1.4.1.21367.2017.7.101",),
    consent_document_id="urn:uuid:b7a2f5e0-5e2c-4d8e-9d6a-0c6f5a8e9d11",
    authz=AuthzDecision(
        "Permit",
        AUDIENCE,
        access_consent_policies=("urn:oid:1.2.3.4",),
        instance_access_consent_policies=("urn:oid:1.2.3.4.123456789",),
    ),
)


@pytest.fixture
def credentials(pki) -> SigningCredentials:
    return SigningCredentials(key=pki.gateway.key, certificate=pki.gateway.cert)


DEFAULT = IssuePolicy(audience=AUDIENCE)


def header(credentials, clock, policy=DEFAULT, **kw) -> etree._Element:
    """The header as a partner receives it: inside an envelope, serialized, parsed."""
    security = build_security_header(
        PRINCIPAL, credentials=credentials, policy=policy, clock=clock, **kw
    )
    envelope = build_envelope(SoapVersion.SOAP12, etree.Element("{urn:x}Request"), [security])
    root = parse_xml(to_bytes(envelope))
    return root.find(".//wsse:Security", NS)


def receive(security, pki, trust, clock, replay=None, **policy):
    return verify_security_header(
        security,
        trust=trust,
        policy=XuaPolicy(**policy),
        clock=clock,
        replay_cache=replay or MemoryReplayCache(),
        tls_client_cert=pki.gateway.cert,
    )


def test_our_header_is_accepted_by_our_verifier_and_round_trips(pki, trust, credentials, clock):
    received = receive(header(credentials, clock), pki, trust, clock, audiences={AUDIENCE})
    assert replace(received, assertion=None) == PRINCIPAL
    assert received.assertion.signer_subject == pki.gateway.dn
    assert received.assertion.issuer == pki.gateway.dn


@pytest.fixture(scope="module")
def saml_schema():
    """SAML 2.0 assertion schema plus HL7 datatypes (for xsi:type="hl7:CE"), no network."""
    sys.path.insert(0, str(CONFORMANCE / "schemas"))
    try:
        from check_schemas import HERE, LOCAL_COPIES
    finally:
        sys.path.pop(0)
    hl7 = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:hl7-org:v3"'
        ' xmlns="urn:hl7-org:v3" elementFormDefault="qualified"><xs:include schemaLocation="'
        + (HERE / "hl7v3/NE2008/coreschemas/datatypes.xsd").as_uri()
        + '"/></xs:schema>'
    )

    class Local(etree.Resolver):
        def resolve(self, url, pubid, context):
            if url in LOCAL_COPIES:
                return self.resolve_filename(str(HERE / LOCAL_COPIES[url]), context)
            if url == "urn:local:hl7-datatypes.xsd":
                return self.resolve_string(hl7, context)
            return None  # and no_network below: nothing is fetched

    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(Local())
    saml = (HERE / "saml/saml-schema-assertion-2.0.xsd").as_uri()
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:local">'
        f'<xs:import namespace="urn:oasis:names:tc:SAML:2.0:assertion" schemaLocation="{saml}"/>'
        '<xs:import namespace="urn:hl7-org:v3" schemaLocation="urn:local:hl7-datatypes.xsd"/>'
        "</xs:schema>"
    )
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser))


@pytest.mark.parametrize(
    "policy",
    [
        IssuePolicy(audience=AUDIENCE),
        IssuePolicy(signer_key_info="keyvalue", purpose_element="PurposeForUse", oid_prefix=False),
        IssuePolicy(hash="sha512"),
    ],
    ids=["default", "connect-quirks", "sha512"],
)
def test_issued_assertion_is_valid_against_the_saml_schema(credentials, clock, saml_schema, policy):
    assertion = parse_xml(
        issue_assertion(PRINCIPAL, credentials=credentials, policy=policy, now=clock.now()).xml
    )
    assert saml_schema.validate(assertion), saml_schema.error_log
    broken = parse_xml(etree.tostring(assertion))
    broken.find(q("saml2", "Subject")).addprevious(etree.Element(q("saml2", "Bogus")))
    assert not saml_schema.validate(broken)  # the schema does check something


@pytest.mark.parametrize("key_info", ["x509", "keyvalue"])
def test_plain_signxml_verifies_our_assertion_with_only_our_certificate(
    pki, credentials, clock, key_info
):
    security = header(credentials, clock, policy=IssuePolicy(signer_key_info=key_info))
    assertion = security.find(q("saml2", "Assertion"))
    result = XMLVerifier().verify(etree.tostring(assertion), x509_cert=pki.gateway.cert)
    assert result.signed_xml.get("ID") == assertion.get("ID")
    message = XMLVerifier().verify(
        etree.tostring(security),
        x509_cert=pki.gateway.cert,
        id_attribute="Id",
        expect_config=SignatureConfiguration(location="./"),
    )
    assert message.signed_xml.tag == q("wsu", "Timestamp")
    with pytest.raises(Exception):  # noqa: B017 - any signxml refusal will do
        XMLVerifier().verify(etree.tostring(assertion), x509_cert=pki.partner.cert)


def test_structure_of_the_header(credentials, clock):
    security = header(credentials, clock, soap_ns=SoapVersion.SOAP12.value)
    assert security.get(f"{{{SoapVersion.SOAP12.value}}}mustUnderstand") == "true"
    children = [etree.QName(c).localname for c in security]
    assert children == ["Timestamp", "Assertion", "Signature"]
    assertion = security.find(q("saml2", "Assertion"))
    assert [etree.QName(c).localname for c in assertion][:2] == ["Issuer", "Signature"]
    reference = assertion.find("ds:Signature/ds:SignedInfo/ds:Reference", NS)
    assert reference.get("URI") == "#" + assertion.get("ID")
    identifier = security.find("ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference/*", NS)
    assert identifier.text == assertion.get("ID")
    role = assertion.find(f".//{{{HL7_NS}}}Role")
    assert role.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "hl7:CE"
    soap11 = header(credentials, clock, soap_ns=SoapVersion.SOAP11.value)
    assert soap11.get(f"{{{SoapVersion.SOAP11.value}}}mustUnderstand") == "1"


def test_connect_quirks_sha1_purpose_for_use_bare_oids(pki, trust, credentials, clock):
    policy = IssuePolicy(hash="sha1", purpose_element="PurposeForUse", oid_prefix=False)
    security = header(credentials, clock, policy=policy)
    method = security.find("saml2:Assertion/ds:Signature/ds:SignedInfo/ds:SignatureMethod", NS)
    assert method.get("Algorithm").endswith("rsa-sha1")
    assert security.find(f".//{{{HL7_NS}}}PurposeForUse") is not None
    hcid = [
        a.findtext(q("saml2", "AttributeValue"))
        for a in security.iter(q("saml2", "Attribute"))
        if a.get("Name") == "urn:nhin:names:saml:homeCommunityId"
    ]
    assert hcid == ["1.3.6.1.4.1.21367.2011.2"]
    with pytest.raises(SecurityRefused):
        receive(security, pki, trust, clock, accept_purpose_for_use=True)
    received = receive(security, pki, trust, clock, allow_sha1=True, accept_purpose_for_use=True)
    assert received.home_community_id == PRINCIPAL.home_community_id


def test_ecdsa_gateway_key(pki, trust):
    clock = FixedClock()
    ec = SigningCredentials(key=pki.partner_ec.key, certificate=pki.partner_ec.cert)
    security = header(ec, clock)
    received = verify_security_header(
        security,
        trust=trust,
        policy=XuaPolicy(),
        clock=clock,
        replay_cache=MemoryReplayCache(),
        tls_client_cert=pki.partner_ec.cert,
    )
    assert received.assertion.signature_method.endswith("ecdsa-sha256")


def _assertion_id(security) -> str:
    return security.find(q("saml2", "Assertion")).get("ID")


def test_cache_reuses_an_assertion_per_user_context_while_valid(pki, trust, credentials):
    clock = FixedClock()
    cache = AssertionCache()
    reuse = IssuePolicy(reuse_assertions=True, lifetime=timedelta(minutes=10))
    first = header(credentials, clock, policy=reuse, cache=cache)
    second = header(credentials, clock, policy=reuse, cache=cache)
    assert _assertion_id(first) == _assertion_id(second)
    assert first.find("wsu:Timestamp", NS).get(q("wsu", "Id")) != second.find(
        "wsu:Timestamp", NS
    ).get(q("wsu", "Id"))
    # A verifier that allows reuse takes both; a strict one refuses the second.
    replay = MemoryReplayCache()
    receive(first, pki, trust, clock, replay, allow_assertion_reuse=True)
    receive(second, pki, trust, clock, replay, allow_assertion_reuse=True)
    strict = MemoryReplayCache()
    receive(first, pki, trust, clock, strict)
    with pytest.raises(SecurityRefused):
        receive(second, pki, trust, clock, strict)

    other_user = build_security_header(
        replace(PRINCIPAL, purpose_of_use=Code("PAYMENT", NHIN_PURPOSE)),
        credentials=credentials,
        policy=reuse,
        clock=clock,
        cache=cache,
    )
    assert _assertion_id(other_user) != _assertion_id(first)
    clock.at += timedelta(minutes=9, seconds=30)  # less than min_remaining left
    assert _assertion_id(header(credentials, clock, policy=reuse, cache=cache)) != (
        _assertion_id(first)
    )


def test_cache_is_not_used_unless_the_partner_policy_says_so(credentials, clock):
    cache = AssertionCache()
    first = header(credentials, clock, cache=cache)
    assert _assertion_id(first) != _assertion_id(header(credentials, clock, cache=cache))
    assert len(cache) == 0


def test_cache_is_bounded(credentials, clock):
    cache = AssertionCache(max_entries=2)
    reuse = IssuePolicy(reuse_assertions=True)
    for name in ("a", "b", "c"):
        build_security_header(
            replace(PRINCIPAL, subject_id=name),
            credentials=credentials,
            policy=reuse,
            clock=clock,
            cache=cache,
        )
    assert len(cache) == 2


def test_issue_policy_refuses_unknown_settings():
    with pytest.raises(ValueError):
        IssuePolicy(hash="md5")
    with pytest.raises(ValueError):
        IssuePolicy(purpose_element="Purpose")


def test_credentials_and_anchors_load_from_pem_bytes(pki, clock):
    key_pem = pki.gateway.key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"test-only")
    )
    chain_pem = pki.gateway.cert.public_bytes(Encoding.PEM) + pki.ca.cert.public_bytes(Encoding.PEM)
    credentials = SigningCredentials.from_pem(key_pem, chain_pem, password=b"test-only")
    assert credentials.chain == (pki.ca.cert,)
    trust = TrustAnchors.from_pem(pki.ca.cert.public_bytes(Encoding.PEM))
    received = verify_security_header(
        header(credentials, clock),
        trust=trust,
        policy=XuaPolicy(),
        clock=clock,
        replay_cache=MemoryReplayCache(),
        tls_client_cert=pki.gateway.cert.public_bytes(Encoding.DER),  # as getpeercert gives it
    )
    assert received.subject_id == PRINCIPAL.subject_id
