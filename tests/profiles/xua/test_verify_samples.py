"""Peers' real message shapes, re-signed by the test PKI, are accepted and read right."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree

from profiles.xua import Code, XuaPolicy
from profiles.xua.assertion import (
    EMAIL,
    ENVELOPED,
    HL7_NS,
    NHIN_PURPOSE,
    SNOMED_CT,
    X509_SUBJECT,
)
from tests.profiles.xua.edits import ipf_to_ehx
from tests.profiles.xua.messages import (
    CONNECT_AUTHFRAMEWORK,
    CONNECT_HOK_SV_BEARER,
    CONNECT_WIRE,
    IPF_HEADER,
    IPF_SWISS,
    METRIPORT_ITI38,
    METRIPORT_SHA1,
    METRIPORT_TS,
    NS,
    Shape,
    add_prefix_list,
    load,
    q,
    resign,
    resign_signed_info,
    restamp,
)


def shape(pki, **kw) -> Shape:
    return Shape(signer=pki.partner, hok=pki.partner, now=pki.now, **kw)


def test_connect_wire_request_is_accepted_and_read(pki, verify):
    # CONNECT: KeyValue-only signer, no Conditions, SubjectLocality, consent Evidence.
    env = resign(load(CONNECT_WIRE), shape(pki, conditions=None))
    principal = verify(env)
    assert principal.subject_id == "Karl S Skagerberg"
    assert principal.organization == "InternalTest1"
    assert principal.organization_id == "urn:oid:1.1"
    assert principal.home_community_id == "urn:oid:1.1"  # sent bare, kept prefixed
    assert principal.role == Code("307969004", SNOMED_CT, "SNOMED_CT", "Public Health")
    assert principal.purpose_of_use.code == "PUBLICHEALTH"
    assert principal.purpose_of_use.code_system == NHIN_PURPOSE
    assert principal.resource_id == "500000000^^^&1.1&ISO"
    assert (principal.name_id, principal.name_id_format) == ("UID=kskagerb", X509_SUBJECT)
    assert principal.authz is not None and principal.authz.decision == "Permit"
    assert principal.authz.access_consent_policies == ("urn:oid:1.2.3.4",)
    assert principal.authz.instance_access_consent_policies == ("urn:oid:1.2.3.4.123456789",)
    facts = principal.assertion
    assert facts.issuer == "CN=SAML User,OU=SU,O=SAML User,L=Los Angeles,ST=CA,C=US"
    assert facts.signer_subject == pki.partner.dn
    assert facts.signature_method.endswith("rsa-sha256")
    assert facts.not_on_or_after == pki.now + timedelta(hours=1)  # IssueInstant + max age


def _fix_purpose(assertion):
    for el in assertion.iter(f"{{{HL7_NS}}}PurposeOfUse"):
        el.set("code", "PUBLICHEALTH")


def test_connect_authframework_sample_with_one_statement_per_attribute(pki, verify):
    env = resign(load(CONNECT_AUTHFRAMEWORK), shape(pki), edit=_fix_purpose)
    principal = verify(env)
    assert principal.npi == "1234567890"
    assert principal.organization_id == "urn:oid:2.2"
    assert principal.home_community_id == "urn:oid:1.1"
    assert principal.authz.access_consent_policies == ("Claim-Ref-1234",)


def test_connect_authframework_sample_as_shipped_has_an_unknown_purpose(pki, refused):
    env = resign(load(CONNECT_AUTHFRAMEWORK), shape(pki))  # code="PUBLICHEALTHKIERAN"
    fault = refused(env, "InvalidSecurityToken")
    assert "PUBLICHEALTHKIERAN" in fault.internal_reason


def test_connect_legacy_sample_needs_bearer_and_purpose_for_use_switched_on(pki, verify, refused):
    # Three confirmations (HoK, sender-vouches, bearer) and the 2010 PurposeForUse.
    def env():
        return resign(load(CONNECT_HOK_SV_BEARER), shape(pki))

    refused(env(), "InvalidSecurityToken")  # bearer refused by default
    lenient_bearer = XuaPolicy(allow_bearer=True)
    fault = refused(env(), "InvalidSecurityToken", policy=lenient_bearer)
    assert "PurposeOfUse" in fault.internal_reason
    principal = verify(env(), policy=XuaPolicy(allow_bearer=True, accept_purpose_for_use=True))
    assert principal.purpose_of_use.code == "OPERATIONS"
    assert principal.role.display_name == "Pharmacist"
    assert principal.subject_id == "Interop IT Testcase"  # whitespace collapsed


def test_metriport_signature_without_keyinfo_and_emailaddress_issuer(pki, verify, refused):
    env = resign(load(METRIPORT_TS), shape(pki))
    assert env.find(".//saml2:Assertion/ds:Signature/ds:KeyInfo", NS) is None
    principal = verify(env)
    assert principal.assertion.issuer_format == EMAIL
    assert principal.home_community_id == "urn:oid:1.16.840.1.113883.3.9621.5.219"
    assert principal.role.code == "106331006"
    audience = "http://localhost:9091/Gateway/PatientDiscovery/1_0/NhinService/NhinPatientDiscovery"
    assert verify(resign(load(METRIPORT_TS), shape(pki)), policy=XuaPolicy(audiences={audience}))
    other = XuaPolicy(audiences=frozenset({"https://gateway.example.org/xcpd"}))
    refused(resign(load(METRIPORT_TS), shape(pki)), "FailedAuthentication", policy=other)


def _fix_stray_brace(assertion):
    for value in assertion.iter(q("saml2", "AttributeValue")):
        if value.text and value.text.endswith("}"):
            value.text = value.text[:-1]  # their homeCommunityId reads "urn:oid:...9621}"


def test_metriport_stray_brace_in_home_community_id_is_refused(pki, refused):
    fault = refused(resign(load(METRIPORT_SHA1), shape(pki)), "InvalidSecurityToken")
    assert "homeCommunityId" in fault.internal_reason


@pytest.mark.parametrize("sample", [METRIPORT_SHA1, METRIPORT_ITI38])
def test_metriport_rsa_sha1_needs_the_partner_switch(pki, verify, refused, sample):
    # Their signature comes before the Timestamp it covers, and uses RSA-SHA1.
    def env():
        return resign(load(sample), shape(pki, hash="sha1"), edit=_fix_stray_brace)

    fault = refused(env(), "FailedCheck")
    assert "SHA1" in fault.internal_reason
    principal = verify(env(), policy=XuaPolicy(allow_sha1=True))
    assert principal.assertion.signature_method.endswith("rsa-sha1")


def test_ipf_shaped_assertion_with_x509_chain_is_accepted(pki, verify):
    def edit(assertion):
        ipf_to_ehx(
            assertion,
            name_format=X509_SUBJECT,
            issuer="CN=STS,O=XUA Test,C=US",
            subject="CN=Rosa Sestak,O=XUA Test,C=US",
            hok=pki.partner,
        )

    signer = Shape(
        signer=pki.via_intermediate,  # certified by an intermediate sent in X509Data
        hok=pki.partner,
        now=pki.now,
        key_info="x509",
        chain=(pki.intermediate,),
    )
    shaped = resign(load(IPF_SWISS), signer, edit=edit)
    principal = verify(shaped)
    assert principal.assertion.signer_subject == pki.via_intermediate.dn
    assert principal.organization == "Org 1 AG"
    assert principal.resource_id == "761337610411353650^^^&2.16.756.5.30.1.127.3.10.3&ISO"
    assert principal.home_community_id == "urn:oid:1.3.6.1.4.1.21367.2017.2.6.19"


def test_ipf_header_as_shipped_is_not_ehx_and_is_refused(pki, refused):
    # Bearer confirmation, Issuer without Format, NameID "unspecified": not eHx.
    env = resign(load(IPF_HEADER), shape(pki, key_info="x509"))
    refused(env, "InvalidSecurityToken")


def test_ecdsa_signer_is_accepted(pki, verify):
    env = resign(
        load(CONNECT_WIRE),
        Shape(signer=pki.partner_ec, hok=pki.partner_ec, now=pki.now, key_info="x509"),
    )
    principal = verify(env, tls_client_cert=pki.partner_ec.cert)
    assert principal.assertion.signature_method.endswith("ecdsa-sha256")


def test_connect_inclusive_namespace_prefix_lists_verify(pki, verify):
    # CONNECT: PrefixList="xs" on the assertion reference (xs:string lives in attribute
    # values only) and "wsse S" / "wsu wsse S" on the Timestamp signature.
    env = resign(load(CONNECT_AUTHFRAMEWORK), shape(pki), edit=_fix_purpose)
    env = add_prefix_list(env, ["xs"], pki.partner.key)
    env = restamp(env, pki.partner, pki.now, prefixes=["wsse", "S"])
    listed = env.findall(".//{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces")
    assert sorted(el.get("PrefixList") for el in listed) == ["wsse S", "wsu wsse S", "xs"]
    assert verify(env).npi == "1234567890"


def test_metriport_enveloped_transform_on_the_timestamp_reference_is_tolerated(pki, verify):
    # Their Timestamp signature lists enveloped-signature although it is a sibling.
    env = resign(load(METRIPORT_TS), shape(pki))
    signature = env.find(".//wsse:Security/ds:Signature", NS)
    transforms = signature.find("ds:SignedInfo/ds:Reference/ds:Transforms", NS)
    enveloped = etree.Element(q("ds", "Transform"), Algorithm=ENVELOPED)
    transforms.insert(0, enveloped)
    resign_signed_info(signature, pki.partner.key)
    assert verify(env).organization == "Metriport"
