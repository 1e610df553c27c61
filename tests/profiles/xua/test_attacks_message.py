"""Attacks on everything around the signature: times, replay, the holder-of-key
Timestamp, the parser, sizes, and the attribute profile."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree

from gateway.soap.envelope import parse_envelope
from profiles.errors import SoapFault
from profiles.xml import parse_xml, to_bytes
from profiles.xua import (
    SecurityRefused,
    XuaPolicy,
    check_security_header,
    replayed,
    security_header,
    verify_security_header,
)
from profiles.xua.assertion import (
    HL7_NS,
    HOME_COMMUNITY_ID,
    ORGANIZATION,
    ORGANIZATION_ID,
    PURPOSE_OF_USE,
    SUBJECT_ID,
    SUBJECT_ROLE,
)
from profiles.xua.policy import record_replay_keys
from tests.profiles.xua.conftest import MemoryReplayCache
from tests.profiles.xua.messages import (
    CONNECT_WIRE,
    NS,
    Shape,
    clone,
    load,
    q,
    reparse,
    resign,
    restamp,
    security_of,
)

MIN = timedelta(minutes=1)


def base(pki, edit=None, **kw):
    kw.setdefault("signer", pki.partner)
    kw.setdefault("hok", pki.partner)
    return resign(load(CONNECT_WIRE), Shape(now=pki.now, **kw), edit=edit)


# --- validity windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    "conditions",
    [(-20 * MIN, -6 * MIN), (6 * MIN, 20 * MIN)],
    ids=["NotOnOrAfter 6 min ago", "NotBefore in 6 min"],
)
def test_assertion_outside_its_window_is_refused(pki, refused, conditions):
    refused(base(pki, conditions=conditions), "MessageExpired")


@pytest.mark.parametrize("conditions", [(-20 * MIN, -4 * MIN), (4 * MIN, 20 * MIN)])
def test_clock_skew_of_five_minutes_is_tolerated(pki, verify, conditions):
    assert verify(base(pki, conditions=conditions))


def test_skew_is_configurable(pki, refused):
    env = base(pki, conditions=(-20 * MIN, -2 * MIN))
    refused(env, "MessageExpired", policy=XuaPolicy(clock_skew=MIN))


def test_assertion_without_conditions_expires_after_max_age(pki, refused):
    env = base(pki, conditions=None, issue_offset=-2 * timedelta(hours=1))
    fault = refused(env, "MessageExpired")
    assert "too old" in fault.internal_reason


def test_issue_instant_in_the_future_is_refused(pki, refused):
    refused(base(pki, issue_offset=6 * MIN), "MessageExpired")


# --- replay -----------------------------------------------------------------------------


def test_replayed_message_is_refused(pki, verify, refused, replay):
    env = base(pki)
    verify(env)
    fault = refused(env, "InvalidSecurity")
    assert "replayed" in fault.internal_reason
    assert all(expiry > pki.now for expiry in replay.keys.values())


def test_check_hands_the_keys_back_for_the_caller_to_consume(pki, trust, clock, replay):
    """``check_security_header``: the caller consumes the keys later (the gateway, in the
    commit of the request's audit record), and a key consumed already is refused there
    with the verifier's own refusal."""
    env = base(pki)
    kwargs = {"trust": trust, "policy": XuaPolicy(), "clock": clock,
              "tls_client_cert": pki.partner.cert}
    checked = check_security_header(security_of(reparse(env)), **kwargs)
    assert checked.principal.subject_id and replay.keys == {}
    [key] = checked.replay_keys
    assert key.key.startswith("xua:assertion:") and key.expires_at > pki.now
    again = check_security_header(security_of(reparse(env)), **kwargs)  # not consumed yet
    assert again.replay_keys == checked.replay_keys
    record_replay_keys(replay, checked.replay_keys)
    with pytest.raises(SecurityRefused) as info:
        record_replay_keys(replay, again.replay_keys)  # the replay loses
    assert info.value.wsse_fault.value == "InvalidSecurity"
    assert info.value.internal_reason == replayed(key.key).internal_reason
    with pytest.raises(SecurityRefused):  # and the verifier refuses it the same way
        verify_security_header(security_of(reparse(env)), replay_cache=replay, **kwargs)


def test_same_assertion_with_a_fresh_timestamp_is_refused_by_default(pki, verify, refused):
    env = base(pki)
    verify(env)
    refused(restamp(env, pki.partner, pki.now + MIN), "InvalidSecurity")


def test_reuse_policy_accepts_a_fresh_timestamp_but_not_a_repeated_message(pki, verify, refused):
    reuse = XuaPolicy(allow_assertion_reuse=True)
    env = base(pki)
    verify(env, policy=reuse)
    again = restamp(env, pki.partner, pki.now + MIN)
    assert verify(again, policy=reuse)
    refused(again, "InvalidSecurity", policy=reuse)


def test_one_time_use_condition_is_single_use_even_under_reuse_policy(pki, verify, refused):
    def edit(assertion):
        etree.SubElement(assertion.find(q("saml2", "Conditions")), q("saml2", "OneTimeUse"))

    reuse = XuaPolicy(allow_assertion_reuse=True)
    env = base(pki, edit=edit)
    verify(env, policy=reuse)
    refused(restamp(env, pki.partner, pki.now + MIN), "InvalidSecurity", policy=reuse)


def test_replay_cache_failure_is_the_gateways_not_the_peers(pki, trust, clock):
    class Broken:
        def add_if_absent(self, key, expires_at):
            raise RuntimeError("database down")

    security = security_of(reparse(base(pki)))
    with pytest.raises(RuntimeError):
        verify_security_header(
            security,
            trust=trust,
            policy=XuaPolicy(),
            clock=clock,
            replay_cache=Broken(),
            tls_client_cert=pki.partner.cert,
        )


# --- holder-of-key and the Timestamp ------------------------------------------------------


def test_missing_timestamp_is_refused(pki, refused):
    fault = refused(base(pki, timestamp=False), "InvalidSecurity")
    assert "Timestamp" in fault.internal_reason


def test_unsigned_timestamp_is_refused(pki, refused):
    refused(base(pki, sign_timestamp=False), "InvalidSecurity")


def test_timestamp_signed_with_another_trusted_key_is_refused(pki, refused):
    fault = refused(base(pki, ts_signer=pki.partner2), "FailedCheck")
    assert "Signature verification failed" in fault.internal_reason


def test_timestamp_changed_after_signing_is_refused(pki, refused):
    env = base(pki)
    expires = security_of(env).find("wsu:Timestamp/wsu:Expires", NS)
    expires.text = expires.text.replace(str(pki.now.year), str(pki.now.year + 1))
    refused(env, "FailedCheck")


@pytest.mark.parametrize(
    "created, lifetime",
    [(-10 * MIN, 5 * MIN), (6 * MIN, 5 * MIN), (-11 * MIN, 60 * MIN)],
    ids=["expired", "created in the future", "stale"],
)
def test_timestamp_outside_its_window_is_refused(pki, refused, created, lifetime):
    refused(base(pki, ts_created=created, ts_lifetime=lifetime), "MessageExpired")


def test_message_signature_must_name_the_assertion(pki, refused):
    env = base(pki)
    identifier = security_of(env).find(
        "ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier", NS
    )
    identifier.text = "_someone-else"  # KeyInfo is not signed: no signature failure needed
    fault = refused(env, "FailedCheck")
    assert "another token" in fault.internal_reason


def test_holder_of_key_must_be_the_tls_client_key(pki, verify, refused):
    env = base(pki, key_info="x509")  # signer found through X509Data, not the TLS peer
    fault = refused(env, "FailedAuthentication", tls_client_cert=pki.partner2.cert)
    assert "holder-of-key" in fault.internal_reason
    # ... or a signing certificate registered for the same partner.
    assert verify(base(pki), tls_client_cert=pki.partner2.cert, partner_certs=(pki.partner.cert,))
    fault = refused(base(pki, key_info="x509"), "FailedAuthentication", tls_client_cert=None)
    assert "holder-of-key" in fault.internal_reason


def test_holder_of_key_key_of_an_assertion_signed_by_someone_else(pki, refused):
    # A genuine partner2 assertion naming partner2's key, sent over partner's TLS session.
    env = base(pki, signer=pki.partner2, hok=pki.partner2, key_info="x509")
    refused(env, "FailedAuthentication")


def test_home_community_must_be_the_partners(pki, verify, refused):
    assert verify(base(pki), partner_home_community_id="urn:oid:1.1")
    assert verify(base(pki), partner_home_community_id="1.1")
    refused(base(pki), "FailedAuthentication", partner_home_community_id="urn:oid:2.2")


# --- parser, size, header shape ----------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE S:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE S:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
"""


def _with_doctype(pki, doctype: bytes, entity: str) -> bytes:
    env = base(pki)
    etree.SubElement(security_of(env), "{urn:x}Note").text = "ENTITY-HERE"
    body = to_bytes(env, declaration=False).replace(b"ENTITY-HERE", entity.encode())
    return doctype + body


@pytest.mark.parametrize("doctype, entity", [(XXE, "&xxe;"), (LAUGHS, "&d;")])
def test_xxe_and_entity_expansion_are_refused_by_the_parser(pki, doctype, entity):
    data = _with_doctype(pki, doctype, entity)
    with pytest.raises(SoapFault) as info:
        parse_xml(data)
    assert info.value.code == "Sender"
    assert "DOCTYPE" in info.value.reason


def test_a_tree_with_a_dtd_is_refused_even_if_a_laxer_parser_let_it_through(pki, trust, clock):
    data = _with_doctype(pki, XXE, "&xxe;")
    lax = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    root = etree.fromstring(data, lax)
    security = root.find(".//wsse:Security", NS)
    with pytest.raises(SecurityRefused) as info:
        verify_security_header(
            security,
            trust=trust,
            policy=XuaPolicy(),
            clock=clock,
            replay_cache=MemoryReplayCache(),
            tls_client_cert=pki.partner.cert,
        )
    assert info.value.wsse_fault.value == "InvalidSecurity"


@pytest.mark.parametrize("kind", ["text", "depth", "elements"])
def test_oversized_header_is_refused(pki, refused, kind):
    env = base(pki)
    security = security_of(env)
    junk = etree.SubElement(security, "{urn:x}Junk")
    if kind == "text":
        junk.text = "A" * 70_000
    elif kind == "depth":
        for _ in range(30):
            junk = etree.SubElement(junk, "{urn:x}Junk")
    else:
        for _ in range(1_200):
            etree.SubElement(junk, "{urn:x}J")
    fault = refused(env, "InvalidSecurity")
    assert "over limits" in fault.internal_reason


def test_second_security_header_is_refused(pki, refused):
    env = base(pki)
    security = security_of(env)
    security.addnext(etree.Element(security.tag))
    refused(env, "InvalidSecurity")


def test_saml11_assertion_in_the_header_is_refused(pki, refused):
    env = base(pki)
    etree.SubElement(security_of(env), "{urn:oasis:names:tc:SAML:1.0:assertion}Assertion")
    refused(env, "InvalidSecurity")


def test_something_else_than_a_security_header_is_refused(pki, trust, clock, replay):
    env = reparse(base(pki))
    with pytest.raises(SecurityRefused) as info:
        verify_security_header(
            env.find(".//{http://www.w3.org/2005/08/addressing}Action"),
            trust=trust,
            policy=XuaPolicy(),
            clock=clock,
            replay_cache=replay,
        )
    assert info.value.wsse_fault.value == "InvalidSecurity"


# --- attribute profile, formats -----------------------------------------------------------


def _attribute(assertion, name):
    return next(a for a in assertion.iter(q("saml2", "Attribute")) if a.get("Name") == name)


@pytest.mark.parametrize(
    "name",
    [SUBJECT_ID, ORGANIZATION, ORGANIZATION_ID, HOME_COMMUNITY_ID, SUBJECT_ROLE, PURPOSE_OF_USE],
)
def test_each_required_attribute_is_required(pki, refused, name):
    def edit(assertion):
        attr = _attribute(assertion, name)
        attr.getparent().remove(attr)

    fault = refused(base(pki, edit=edit), "InvalidSecurityToken")
    assert name in fault.internal_reason


def test_a_repeated_attribute_is_refused(pki, refused):
    def edit(assertion):
        attr = _attribute(assertion, SUBJECT_ID)
        attr.addnext(clone(attr))

    refused(base(pki, edit=edit), "InvalidSecurityToken")


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("codeSystem", "2.16.756.5.30.1.127.3.10.6"),  # not SNOMED CT
        ("code", "HCP"),  # not a SNOMED CT concept id
        ("code", ""),
    ],
)
def test_malformed_role_is_refused(pki, refused, attribute, value):
    def edit(assertion):
        assertion.find(f".//{{{HL7_NS}}}Role").set(attribute, value)

    refused(base(pki, edit=edit), "InvalidSecurityToken")


def test_role_allow_list(pki, verify, refused):
    assert verify(base(pki), policy=XuaPolicy(role_codes=frozenset({"307969004"})))
    refused(base(pki), "InvalidSecurityToken", policy=XuaPolicy(role_codes=frozenset({"1"})))


@pytest.mark.parametrize(
    "path, fmt",
    [
        ("saml2:Subject/saml2:NameID", "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"),
        ("saml2:Issuer", None),
        ("saml2:Issuer", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
    ],
)
def test_issuer_and_name_id_formats(pki, refused, path, fmt):
    def edit(assertion):
        el = assertion.find(path, NS)
        el.attrib.pop("Format")
        if fmt:
            el.set("Format", fmt)

    refused(base(pki, edit=edit), "InvalidSecurityToken")


def test_x509_name_id_must_be_a_distinguished_name(pki, refused):
    def edit(assertion):
        assertion.find("saml2:Subject/saml2:NameID", NS).text = "just a name"

    refused(base(pki, edit=edit), "InvalidSecurityToken")


def test_holder_of_key_confirmation_is_required(pki, refused):
    def edit(assertion):
        confirmation = assertion.find("saml2:Subject/saml2:SubjectConfirmation", NS)
        confirmation.set("Method", "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches")

    refused(base(pki, edit=edit), "InvalidSecurityToken")


def test_refusals_never_put_details_in_the_peer_facing_reason(pki, refused):
    fault = refused(base(pki, signer=pki.attacker, key_info="x509"), "FailedAuthentication")
    assert "attacker" in fault.internal_reason
    assert "attacker" not in fault.reason and "CN=" not in fault.reason
    assert str(fault) == fault.reason


def test_the_gateway_path_envelope_headers_to_principal(pki, trust, clock, replay):
    envelope = parse_envelope(to_bytes(base(pki)), max_bytes=1 << 20)
    security = security_header(envelope.headers, required=True)
    principal = verify_security_header(
        security,
        trust=trust,
        policy=XuaPolicy(),
        clock=clock,
        replay_cache=replay,
        tls_client_cert=pki.partner.cert,
    )
    assert principal.home_community_id == "urn:oid:1.1"


def test_security_header_selection(pki):
    headers = tuple(security_of(base(pki)).getparent())
    others = tuple(h for h in headers if h.tag != q("wsse", "Security"))
    assert security_header(headers, required=True).tag == q("wsse", "Security")
    assert security_header(others, required=False) is None
    for bad in (others, headers + (clone(headers[-1]),)):
        with pytest.raises(SecurityRefused) as info:
            security_header(bad, required=True)
        assert info.value.wsse_fault.value == "InvalidSecurity"
