"""Attacks on the assertion signature (security.md section 2): each one is refused with
the expected WS-Security subcode, and for the right reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import XMLVerifier

from profiles.xua import TrustAnchors, XuaPolicy
from profiles.xua.assertion import EMAIL, HL7_NS
from tests.profiles.xua.edits import forge
from tests.profiles.xua.messages import (
    CONNECT_WIRE,
    NS,
    Shape,
    assertion_of,
    clone,
    load,
    q,
    reparse,
    resign,
    resign_signed_info,
    security_of,
)
from tests.profiles.xua.pki import make_ca, make_leaf

A = q("saml2", "Assertion")
DAY = timedelta(days=1)


def base(pki, edit=None, **kw):
    kw.setdefault("signer", pki.partner)
    kw.setdefault("hok", pki.partner)
    return resign(load(CONNECT_WIRE), Shape(now=pki.now, **kw), edit=edit)


def test_the_base_message_is_accepted(pki, verify):
    assert verify(base(pki)).subject_id == "Karl S Skagerberg"


def _forge(genuine: etree._Element, *, keep_signature: bool, same_id: bool) -> etree._Element:
    forged = forge(genuine, keep_signature=keep_signature, same_id=same_id, name_id="CN=admin")
    for value in forged.iter(q("saml2", "AttributeValue")):
        if (value.text or "").strip() == "Karl S Skagerberg":
            value.text = "Chief Administrator"
    return forged


@pytest.mark.parametrize("keep_signature", [False, True])
def test_xsw_forged_assertion_on_top_genuine_in_advice(pki, refused, keep_signature):
    env = base(pki)
    security = security_of(env)
    genuine = security.find(A)
    forged = _forge(genuine, keep_signature=keep_signature, same_id=keep_signature)
    security.replace(genuine, forged)
    advice = etree.Element(q("saml2", "Advice"))
    forged.find(q("saml2", "Conditions")).addnext(advice)
    advice.append(genuine)
    fault = refused(env, "InvalidSecurity")
    assert "Advice" in fault.internal_reason or "ID" in fault.internal_reason


def test_xsw_genuine_wrapped_in_another_element_forged_with_copied_signature(pki, refused):
    env = base(pki)
    security = security_of(env)
    genuine = security.find(A)
    forged = _forge(genuine, keep_signature=True, same_id=True)
    wrapper = etree.Element("{urn:attacker}Wrapper")
    security.replace(genuine, wrapper)
    wrapper.append(genuine)
    wrapper.addnext(forged)
    fault = refused(env, "InvalidSecurity")
    assert "assertions in the message" in fault.internal_reason


def test_xsw_genuine_moved_to_the_body_forged_in_the_header(pki, refused):
    env = base(pki)
    security = security_of(env)
    genuine = security.find(A)
    forged = _forge(genuine, keep_signature=True, same_id=True)
    security.replace(genuine, forged)
    env.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0].append(genuine)
    refused(env, "InvalidSecurity")


def test_xsw_genuine_hidden_in_evidence_of_a_forged_assertion(pki, refused):
    env = base(pki)
    security = security_of(env)
    genuine = security.find(A)
    forged = _forge(genuine, keep_signature=True, same_id=True)
    security.replace(genuine, forged)
    evidence = forged.find("saml2:AuthzDecisionStatement/saml2:Evidence", NS)
    evidence.append(genuine)
    refused(env, "InvalidSecurity")


def test_xsw_forged_with_its_own_id_and_the_genuine_signature(pki, refused):
    env = base(pki)
    security = security_of(env)
    genuine = security.find(A)
    forged = _forge(genuine, keep_signature=True, same_id=False)  # Reference still #genuine
    security.replace(genuine, forged)
    forged.find("saml2:AuthzDecisionStatement/saml2:Evidence", NS).append(genuine)
    refused(env, "InvalidSecurity")


@pytest.mark.parametrize("where", ["body-ID", "header-wsu-Id", "header-Id", "body-lowercase-id"])
def test_an_element_elsewhere_with_the_assertion_id_is_refused(pki, refused, where):
    env = base(pki)
    assertion_id = assertion_of(env).get("ID")
    body = env.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
    header = env.find("{http://www.w3.org/2003/05/soap-envelope}Header")
    attr = {
        "body-ID": "ID",
        "header-wsu-Id": q("wsu", "Id"),
        "header-Id": "Id",
        "body-lowercase-id": "id",
    }[where]
    parent = body if where.startswith("body") else header
    etree.SubElement(parent, "{urn:attacker}Decoy", {attr: assertion_id})
    fault = refused(env, "InvalidSecurity")
    assert "not unique" in fault.internal_reason


def _edit_reference(env, pki, uri: str | None = None, extra_reference: bool = False):
    signature = assertion_of(env).find(q("ds", "Signature"))
    reference = signature.find("ds:SignedInfo/ds:Reference", NS)
    if uri is not None:
        reference.set("URI", uri)
    if extra_reference:
        reference.addnext(clone(reference))
    resign_signed_info(signature, pki.partner.key)  # a *valid* signature by the partner
    return env


def test_reference_uri_empty_is_refused_although_signxml_accepts_it(pki, refused):
    env = _edit_reference(base(pki), pki, uri="")
    # The whole-document reference still verifies in plain signxml: the check is ours.
    plain = XMLVerifier().verify(etree.tostring(assertion_of(env)), x509_cert=pki.partner.cert)
    assert plain.signed_xml.tag == A
    fault = refused(env, "FailedCheck")
    assert "Reference URI ''" in fault.internal_reason


@pytest.mark.parametrize("uri", ["#_other", "http://attacker.example/x", "#xpointer(/)"])
def test_reference_pointing_elsewhere_is_refused(pki, refused, uri):
    fault = refused(_edit_reference(base(pki), pki, uri=uri), "FailedCheck")
    assert "Reference URI" in fault.internal_reason


def test_reference_to_a_signed_subelement_instead_of_the_assertion_is_refused(pki, refused):
    env = base(pki)
    subject = assertion_of(env).find(q("saml2", "Subject"))
    subject.set("ID", "_subject")
    refused(_edit_reference(env, pki, uri="#_subject"), "FailedCheck")


def test_two_references_are_refused(pki, refused):
    fault = refused(_edit_reference(base(pki), pki, extra_reference=True), "FailedCheck")
    assert "2 References" in fault.internal_reason


def test_unsigned_assertion_is_refused(pki, refused):
    env = base(pki)
    assertion = assertion_of(env)
    assertion.remove(assertion.find(q("ds", "Signature")))
    fault = refused(env, "InvalidSecurity")
    assert "not signed" in fault.internal_reason


@pytest.mark.parametrize("who", ["attacker", "foreign"])
def test_attacker_key_with_attacker_certificate_in_keyinfo(pki, refused, who):
    identity = getattr(pki, who)  # self-signed, or from a CA nobody trusts
    env = base(pki, signer=identity, key_info="x509")
    fault = refused(env, "FailedAuthentication")
    assert "does not chain" in fault.internal_reason


def test_attacker_key_value_only_matches_no_known_certificate(pki, refused):
    env = base(pki, signer=pki.attacker, key_info="keyvalue")
    fault = refused(env, "FailedAuthentication")
    assert "no known certificate" in fault.internal_reason


def test_attacker_key_behind_the_partners_certificate(pki, refused):
    # KeyInfo names the trusted partner certificate, the signature is the attacker's.
    env = base(pki, signer=pki.attacker, key_info="x509")
    x509 = assertion_of(env).find("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    partner = security_of(base(pki, key_info="x509")).find(
        "saml2:Assertion/ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS
    )
    x509.text = partner.text
    refused(env, "FailedCheck")


def test_sha1_from_a_trusted_key_is_refused_unless_the_partner_may(pki, verify, refused):
    fault = refused(base(pki, hash="sha1"), "FailedCheck")
    assert "RSA_SHA1" in fault.internal_reason
    assert verify(base(pki, hash="sha1"), policy=XuaPolicy(allow_sha1=True))


@pytest.mark.parametrize(
    "algorithm",
    [
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    ],
)
def test_downgraded_signature_methods_are_refused(pki, refused, algorithm):
    env = base(pki)
    method = assertion_of(env).find("ds:Signature/ds:SignedInfo/ds:SignatureMethod", NS)
    method.set("Algorithm", algorithm)
    refused(env, "FailedCheck")


def test_inclusive_c14n_is_refused(pki, refused):
    env = base(pki)
    c14n = assertion_of(env).find("ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod", NS)
    c14n.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    resign_signed_info(assertion_of(env).find(q("ds", "Signature")), pki.partner.key)
    refused(env, "FailedCheck")


@pytest.mark.parametrize("what", ["purpose", "name_id", "role"])
def test_a_claim_changed_after_signing_is_refused(pki, refused, what):
    env = base(pki)
    assertion = assertion_of(env)
    if what == "purpose":
        assertion.find(f".//{{{HL7_NS}}}PurposeOfUse").set("code", "TREATMENT")
    elif what == "role":
        assertion.find(f".//{{{HL7_NS}}}Role").set("code", "112247003")
    else:
        assertion.find("saml2:Subject/saml2:NameID", NS).text = "UID=admin"
    fault = refused(env, "FailedCheck")
    assert "Digest mismatch" in fault.internal_reason


def test_comment_in_name_id_cannot_truncate_it(pki, verify):
    def edit(assertion):
        name_id = assertion.find("saml2:Subject/saml2:NameID", NS)
        name_id.set("Format", EMAIL)
        name_id.text = "admin@example.org"
        comment = etree.Comment("")
        comment.tail = ".evil.test"
        name_id.append(comment)

    env = base(pki, edit=edit)
    naive = assertion_of(reparse(env)).find("saml2:Subject/saml2:NameID", NS).text
    assert naive == "admin@example.org"  # what a reader of the raw tree would take
    principal = verify(env)
    assert principal.name_id == "admin@example.org.evil.test"


def test_expired_signing_certificate_is_refused(pki, refused):
    fault = refused(base(pki, signer=pki.expired, key_info="x509"), "FailedAuthentication")
    assert "validation time" in fault.internal_reason or "valid" in fault.internal_reason


def test_not_yet_valid_signing_certificate_is_refused(pki, refused):
    refused(base(pki, signer=pki.not_yet_valid, key_info="x509"), "FailedAuthentication")


def test_expired_pinned_partner_certificate_is_refused(pki, refused):
    # KeyValue only: the key is found among the partner's registered certificates.
    env = base(pki, signer=pki.expired, hok=pki.partner, key_info="keyvalue")
    fault = refused(env, "FailedAuthentication", partner_certs=(pki.expired.cert,))
    assert "validity" in fault.internal_reason


def test_pinned_partner_certificate_outside_the_exchange_ca_is_accepted(pki, verify, refused):
    env = base(pki, signer=pki.attacker, hok=pki.partner, key_info="x509")
    refused(env, "FailedAuthentication")
    env = base(pki, signer=pki.attacker, hok=pki.partner, key_info="x509")
    assert verify(env, partner_certs=(pki.attacker.cert,))


def test_signer_certificate_without_digital_signature_key_usage_is_refused(pki, refused):
    no_signing = make_leaf("encipher-only", pki.now, issuer=pki.ca, digital_signature=False)
    fault = refused(base(pki, signer=no_signing, key_info="x509"), "FailedAuthentication")
    assert "digitalSignature" in fault.internal_reason


def test_signer_under_an_expired_intermediate_is_refused(pki, refused):
    old = make_ca("Expired Intermediate", pki.now, issuer=pki.ca, valid=(-400 * DAY, -DAY))
    leaf = make_leaf("under-expired", pki.now, issuer=old, valid=(-400 * DAY, 30 * DAY))
    env = base(pki, signer=leaf, key_info="x509", chain=(old,))
    refused(env, "FailedAuthentication")


def test_the_public_web_bundle_is_never_consulted(pki, refused, tmp_path, monkeypatch):
    # Even if signxml's default CA bundle (certifi) trusted the attacker's CA, we refuse:
    # the verifier always hands signxml the certificate it decided to trust.
    import certifi

    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.other_ca.cert.public_bytes(Encoding.PEM))
    monkeypatch.setattr(certifi, "where", lambda: str(bundle))
    env = base(pki, signer=pki.foreign, key_info="x509")
    plain = XMLVerifier().verify(etree.tostring(assertion_of(env)))  # signxml's default
    assert plain.signed_xml.tag == A  # ... would have trusted it
    refused(env, "FailedAuthentication")


def test_intermediates_may_come_from_the_trust_store_instead_of_keyinfo(pki, verify, refused):
    def env():
        return base(pki, signer=pki.via_intermediate, key_info="x509")  # leaf only

    refused(env(), "FailedAuthentication")
    anchors = TrustAnchors(roots=(pki.ca.cert,), intermediates=(pki.intermediate.cert,))
    assert verify(env(), trust=anchors).assertion.signer_subject == pki.via_intermediate.dn
