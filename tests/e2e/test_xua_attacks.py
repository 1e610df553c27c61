"""XUA over real HTTPS: every attack of ../shared/notes/security.md sent to ``/xca/query``
of a served gateway is refused with its WS-Security subcode (a SOAP 1.2 Sender fault,
HTTP 400), a WARNING log line and an ATNA Security Alert (Authentication Decision) in
the gateway's audit trail. Messages and checks: xua_support.py.
"""

from __future__ import annotations

import json

import pytest
from lxml import etree

from profiles.xml import parse_xml
from profiles.xua.assertion import EMAIL, HL7_NS
from tests.e2e.xua_support import (
    MIN,
    Members,
    alert_ids,
    alert_text,
    assert_accepted,
    assert_refused,
    connect,
    new_alert_ids,
    send,
    xca_query,
)
from tests.profiles.xua.edits import forge
from tests.profiles.xua.messages import NS, q, resign_signed_info, security_of

pytestmark = pytest.mark.e2e

A = q("saml2", "Assertion")


def test_empty_or_missing_security_header(gateway, session, audit_db, members):
    env = connect(members)
    security = security_of(env)
    security.clear()  # an empty header: no assertion, no Timestamp
    assert_refused(gateway, session, audit_db, env, "InvalidSecurity", why="assertions in Security")
    raw = xca_query(env, f"{gateway.base_url}/xca/query", "urn:uuid:x").replace(
        etree.tostring(security), b""
    )
    assert b"Security" not in raw
    assert_refused(
        gateway, session, audit_db, None, "InvalidSecurity", raw=raw, why="no wsse:Security header"
    )


def _forge(genuine: etree._Element, *, keep_signature: bool, same_id: bool) -> etree._Element:
    return forge(
        genuine, keep_signature=keep_signature, same_id=same_id, name_id="CN=Chief Administrator"
    )


def xsw(members: Members, variant: str) -> etree._Element:
    env = connect(members)
    security = security_of(env)
    genuine = security.find(A)
    if variant == "genuine in Advice":
        forged = _forge(genuine, keep_signature=False, same_id=False)
        security.replace(genuine, forged)
        advice = etree.Element(q("saml2", "Advice"))
        forged.find(q("saml2", "Subject")).addnext(advice)
        advice.append(genuine)
    elif variant == "genuine wrapped, forged with copied signature":
        forged = _forge(genuine, keep_signature=True, same_id=True)
        wrapper = etree.Element("{urn:attacker}Wrapper")
        security.replace(genuine, wrapper)
        wrapper.append(genuine)
        wrapper.addnext(forged)
    elif variant == "genuine in Evidence":
        forged = _forge(genuine, keep_signature=True, same_id=True)
        security.replace(genuine, forged)
        forged.find("saml2:AuthzDecisionStatement/saml2:Evidence", NS).append(genuine)
    return env


@pytest.mark.parametrize(
    "variant",
    ["genuine in Advice", "genuine wrapped, forged with copied signature", "genuine in Evidence"],
)
def test_signature_wrapping(gateway, session, audit_db, members, variant):
    assert_refused(gateway, session, audit_db, xsw(members, variant), "InvalidSecurity")


def test_genuine_assertion_moved_to_the_body(gateway, session, audit_db, members):
    env = connect(members)
    security = security_of(env)
    genuine = security.find(A)
    security.replace(genuine, _forge(genuine, keep_signature=True, same_id=True))
    raw = xca_query(env, f"{gateway.base_url}/xca/query", "urn:uuid:x")
    raw = raw.replace(b"</s:Body>", etree.tostring(genuine) + b"</s:Body>")
    assert_refused(
        gateway,
        session,
        audit_db,
        None,
        "InvalidSecurity",
        raw=raw,
        why="assertions in the message",
    )


def test_duplicate_id_elsewhere_in_the_message(gateway, session, audit_db, members):
    env = connect(members)
    assertion_id = security_of(env).find(A).get("ID")
    etree.SubElement(security_of(env), "{urn:attacker}Decoy", ID=assertion_id)
    assert_refused(gateway, session, audit_db, env, "InvalidSecurity", why="duplicate ID")


@pytest.mark.parametrize("uri", ["", "#_other", "http://attacker.example/x"])
def test_reference_not_to_the_assertion(gateway, session, audit_db, members, uri):
    env = connect(members)
    signature = security_of(env).find(A).find(q("ds", "Signature"))
    signature.find("ds:SignedInfo/ds:Reference", NS).set("URI", uri)
    resign_signed_info(signature, members.client.key)  # validly signed by the client
    assert_refused(gateway, session, audit_db, env, "FailedCheck", why=f"Reference URI {uri!r}")


def test_unsigned_assertion(gateway, session, audit_db, members):
    env = connect(members)
    assertion = security_of(env).find(A)
    assertion.remove(assertion.find(q("ds", "Signature")))
    assert_refused(gateway, session, audit_db, env, "InvalidSecurity", why="not signed")


def test_attacker_key_with_attacker_certificate_in_keyinfo(gateway, session, audit_db, members):
    env = connect(members, signer=members.attacker, key_info="x509")
    assert_refused(
        gateway, session, audit_db, env, "FailedAuthentication", why="does not chain to the anchors"
    )


def test_sha1_where_not_allowed(gateway, session, audit_db, members):
    env = connect(members, hash="sha1")
    assert_refused(gateway, session, audit_db, env, "FailedCheck", why="SHA1 not allowed")


def test_attribute_tampered_after_signing(gateway, session, audit_db, members):
    env = connect(members)
    purpose = security_of(env).find(f".//{{{HL7_NS}}}PurposeOfUse")
    purpose.set("code", "PAYMENT" if purpose.get("code") != "PAYMENT" else "TREATMENT")
    assert_refused(gateway, session, audit_db, env, "FailedCheck", why="Digest mismatch")


@pytest.mark.parametrize(
    "conditions, why",
    [((-20 * MIN, -6 * MIN), "NotOnOrAfter passed"), ((6 * MIN, 20 * MIN), "NotBefore")],
    ids=["expired", "not yet valid"],
)
def test_assertion_outside_its_validity(gateway, session, audit_db, members, conditions, why):
    env = connect(members, conditions=conditions)
    assert_refused(gateway, session, audit_db, env, "MessageExpired", why=why)


def test_expired_signing_certificate(gateway, session, audit_db, members):
    env = connect(members, signer=members.expired, key_info="x509")
    assert_refused(gateway, session, audit_db, env, "FailedAuthentication", why="expired")


def test_comment_cannot_truncate_the_name_id(gateway, session, audit_db, members):
    """A comment splits the signed NameID "admin@example.org@evil.test". A parser that
    stops at the comment reads "admin@example.org", a valid address, and accepts it; the
    gateway reads the whole signed value, which is no e-mail address, and refuses it."""

    def as_email(assertion):
        name_id = assertion.find("saml2:Subject/saml2:NameID", NS)
        name_id.set("Format", EMAIL)
        name_id.text = "admin@example.org@evil.test"

    env = connect(members, edit=as_email)
    name_id = security_of(env).find("saml2:Assertion/saml2:Subject/saml2:NameID", NS)
    name_id.text = "admin@example.org"
    comment = etree.Comment("")
    comment.tail = "@evil.test"
    name_id.append(comment)
    raw = xca_query(env, f"{gateway.base_url}/xca/query", "urn:uuid:x")
    assert b"admin@example.org<!---->@evil.test" in raw
    why = "'admin@example.org@evil.test'"  # the whole value, so the signature verified
    assert_refused(gateway, session, audit_db, None, "InvalidSecurityToken", raw=raw, why=why)


def test_replay(gateway, session, audit_db, members):
    raw = xca_query(connect(members), f"{gateway.base_url}/xca/query", "urn:uuid:x")
    assert_accepted(gateway, session, parse_xml(raw))
    assert_refused(gateway, session, audit_db, None, "InvalidSecurity", raw=raw, why="replayed")


def test_missing_timestamp(gateway, session, audit_db, members):
    env = connect(members, timestamp=False)
    assert_refused(gateway, session, audit_db, env, "InvalidSecurity", why="no Timestamp")


def test_timestamp_signed_with_another_key(gateway, session, audit_db, members):
    env = connect(members, ts_signer=members.sts)  # a trusted key, but not the holder's
    assert_refused(gateway, session, audit_db, env, "FailedCheck", why="Signature verification")


def test_holder_of_key_is_not_the_tls_client(gateway, session, audit_db, members):
    env = connect(members, signer=members.sts, hok=members.sts, key_info="x509")
    assert_refused(gateway, session, audit_db, env, "FailedAuthentication", why="holder-of-key")


def test_oversized_header(gateway, session, audit_db, members):
    env = connect(members)
    etree.SubElement(security_of(env), "{urn:attacker}Junk").text = "A" * 70_000
    assert_refused(gateway, session, audit_db, env, "InvalidSecurity", why="over limits")


def test_xxe_inside_the_header_is_refused_by_the_parser(gateway, session, audit_db, members):
    """The hardened parser refuses any DOCTYPE before WS-Security is looked at: a plain
    Sender fault (no wsse subcode), logged as a refused request and audited by the
    pipeline as one security alert (handed over before the answer is sent)."""
    env = connect(members)
    etree.SubElement(security_of(env), "{urn:attacker}Note").text = "ENTITY-HERE"
    body = xca_query(env, f"{gateway.base_url}/xca/query", "urn:uuid:x")
    raw = (
        b'<?xml version="1.0"?>\n<!DOCTYPE s:Envelope '
        b'[<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + body.replace(b"ENTITY-HERE", b"&xxe;")
    )
    before = alert_ids(audit_db)
    answer = send(gateway, session, None, raw=raw)
    assert (answer.status, answer.code, answer.subcode) == (400, "Sender", None)
    assert answer.reason == "DOCTYPE declarations are not accepted"
    new = new_alert_ids(audit_db, before)
    assert len(new) == 1
    assert "DOCTYPE" in alert_text(audit_db, next(iter(new)))
    lines = [json.loads(x) for x in gateway.server_log().splitlines() if answer.request_id in x]
    assert [(x["message"], x["outcome"], x["status"]) for x in lines] == [
        ("soap request", "fault", 400)
    ]
    assert "root:" not in gateway.server_log()  # /etc/passwd was never read
