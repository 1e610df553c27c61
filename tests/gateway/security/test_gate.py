"""The XUA gate: which routes require an assertion, the TLS binding, partners and their
quirks, refusals (fault, log line, record), and the replay cache in the database."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from gateway.dispatch import ROUTES
from gateway.security import PARTNER_ROLES, XuaGate, XuaSettings
from gateway.security.refusals import clean
from gateway.security.settings import load_trust
from profiles.xua import Principal, SecurityRefused
from tests.gateway.security.conftest import FakeConfig, FakePartner, FakeTls, pem
from tests.gateway.security.messages import (
    Req,
    envelope,
    req_from,
    route,
    signed,
    without_security,
)

MIN = timedelta(minutes=1)
XCA = route("/xca/query")
REGISTRY = route("/xds/registry")


def refused(gate, rt, data, req, subcode: str) -> SecurityRefused:
    with pytest.raises(SecurityRefused) as info:
        gate(rt, envelope(data), req)
    fault = info.value
    assert fault.code == "Sender" and fault.subcodes[0][1] == subcode, fault.internal_reason
    assert fault.reason == fault.wsse_fault.reason
    return fault


# --- which routes require an assertion ---------------------------------------------------


@pytest.mark.parametrize("rt", ROUTES, ids=lambda r: r.path)
def test_partner_routes_require_an_assertion_and_local_routes_do_not(make_gate, pki, rt):
    gate = make_gate()
    data, req = without_security(pki), req_from(pki.partner)
    if rt.role in PARTNER_ROLES:
        assert rt.path.startswith(("/xca/", "/xcpd", "/xdr"))
        refused(gate, rt, data, req, "InvalidSecurity")
    else:
        assert rt.path.startswith(("/xds/", "/ig/", "/pix", "/diagnostics"))
        assert gate(rt, envelope(data), req) is None


def test_a_refusal_is_logged_and_recorded_with_its_internal_reason(
    make_gate, pki, recorded, caplog
):
    gate = make_gate()
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        fault = refused(gate, XCA, without_security(pki), req_from(pki.partner), "InvalidSecurity")
    [refusal] = recorded.refusals
    assert refusal.subcode == "InvalidSecurity" and refusal.path == "/xca/query"
    assert refusal.reason == fault.internal_reason == "no wsse:Security header"
    assert refusal.request_id == "req-1" and refusal.peer_subject == pki.partner.dn
    [line] = [r for r in caplog.records if r.name == "gateway.security"]
    assert line.getMessage() == "XUA refused: InvalidSecurity (no wsse:Security header)"
    assert (line.request_id, line.path, line.peer) == ("req-1", "/xca/query", pki.partner.dn)


def test_a_valid_assertion_gives_the_principal(make_gate, pki, recorded):
    principal = make_gate()(XCA, envelope(signed(pki)), req_from(pki.partner))
    assert isinstance(principal, Principal)
    assert principal.subject_id == "Karl S Skagerberg"
    assert principal.assertion.signer_subject == pki.partner.dn
    assert recorded.refusals == []


def test_a_replay_is_refused_through_the_database(make_gate, pki, recorded):
    data = signed(pki)
    assert make_gate()(XCA, envelope(data), req_from(pki.partner))
    other_worker = make_gate()  # another process: only the database is shared
    fault = refused(other_worker, XCA, data, req_from(pki.partner), "InvalidSecurity")
    assert "replayed" in fault.internal_reason
    assert [r.subcode for r in recorded.refusals] == ["InvalidSecurity"]


def test_local_routes_verify_an_assertion_when_one_is_sent(make_gate, pki):
    gate = make_gate()
    assert gate(REGISTRY, envelope(signed(pki)), req_from(pki.partner)).subject_id
    bad = signed(pki, signer=pki.attacker, key_info="x509")
    refused(gate, REGISTRY, bad, req_from(pki.partner), "FailedAuthentication")


def test_development_setting_lets_partner_routes_go_without_but_still_verifies(
    make_gate, pki, caplog
):
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        gate = make_gate(XuaSettings(required_on_partner_endpoints=False))
    assert any("XUA IS OFF" in r.getMessage() for r in caplog.records)
    assert gate(XCA, envelope(without_security(pki)), req_from(pki.partner)) is None
    bad = signed(pki, signer=pki.attacker, key_info="x509")
    refused(gate, XCA, bad, req_from(pki.partner), "FailedAuthentication")


# --- the TLS client certificate -------------------------------------------------------------


def test_holder_of_key_must_be_the_tls_client(make_gate, pki):
    data = signed(pki, key_info="x509")
    fault = refused(make_gate(), XCA, data, req_from(pki.partner2), "FailedAuthentication")
    assert "holder-of-key" in fault.internal_reason


def test_without_a_tls_client_certificate_nothing_binds_the_key(make_gate, pki):
    refused(make_gate(), XCA, signed(pki, key_info="x509"), Req(), "FailedAuthentication")


def test_without_a_trust_store_every_signer_is_refused(make_gate, pki, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        gate = make_gate(tls=False)
    assert any("no trust anchors" in r.getMessage() for r in caplog.records)
    data = signed(pki, key_info="x509")
    refused(gate, XCA, data, req_from(pki.partner), "FailedAuthentication")


def test_an_unreadable_trust_store_stops_the_start(tmp_path, pki):
    config = FakeConfig(tls=FakeTls(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        load_trust(config, XuaSettings())


def test_sha1_only_for_a_partner_whose_quirks_allow_it(make_gate, tmp_path, pki):
    ca = pem(tmp_path / "partner-ca.pem", pki.ca)
    lax = FakePartner("urn:oid:1.1", "CONNECT peer", ca=ca, allow_sha1=True)
    data = signed(pki, hash="sha1")
    refused(make_gate(), XCA, data, req_from(pki.partner), "FailedCheck")
    principal = make_gate(partners=[lax])(XCA, envelope(data), req_from(pki.partner))
    assert principal.assertion.signature_method.endswith("rsa-sha1")


def test_the_assertion_must_carry_the_partners_home_community(make_gate, tmp_path, pki, recorded):
    ca = pem(tmp_path / "partner-ca.pem", pki.ca)
    gate = make_gate(partners=[FakePartner("urn:oid:2.2", "Other", ca=ca)])
    fault = refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "is not the partner's" in fault.internal_reason
    assert recorded.refusals[-1].partner == "Other"
    good = make_gate(partners=[FakePartner("urn:oid:1.1", "CONNECT peer", ca=ca)])
    assert good(XCA, envelope(signed(pki)), req_from(pki.partner)).home_community_id == (
        "urn:oid:1.1"
    )


def test_partners_sharing_a_ca_are_told_apart_by_the_claimed_community(make_gate, tmp_path, pki):
    ca = pem(tmp_path / "exchange.pem", pki.ca)
    sha1_ok = FakePartner("urn:oid:1.1", "A", ca=ca, allow_sha1=True)
    strict = FakePartner("urn:oid:2.2", "B", ca=ca)
    gate = make_gate(partners=[strict, sha1_ok])
    assert gate(XCA, envelope(signed(pki, hash="sha1")), req_from(pki.partner))
    nobody = make_gate(partners=[strict, FakePartner("urn:oid:3.3", "C", ca=ca)])
    fault = refused(nobody, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "fits 2 partners" in fault.internal_reason


def test_a_partners_pinned_self_signed_certificate(make_gate, tmp_path, pki):
    """A partner whose own certificate is registered (no CA): it signs and holds the key."""
    own = pem(tmp_path / "peer.pem", pki.attacker)  # self-signed, but registered
    peer = FakePartner("urn:oid:1.1", "Pinned", ca=own)
    data = signed(pki, signer=pki.attacker, hok=pki.attacker, key_info="x509")
    refused(make_gate(), XCA, data, req_from(pki.attacker), "FailedAuthentication")
    gate = make_gate(partners=[peer])
    assert gate(XCA, envelope(data), req_from(pki.attacker)).subject_id


def test_a_registered_signing_certificate_may_hold_the_key(make_gate, tmp_path, pki):
    """The holder-of-key key is the partner's registered signing key, not its TLS key."""
    ca = pem(tmp_path / "ca.pem", pki.ca)
    signing = pem(tmp_path / "signing.pem", pki.partner2)
    peer = FakePartner("urn:oid:1.1", "Split keys", ca=ca, signing_certificates=signing)
    data = signed(pki, signer=pki.partner2, hok=pki.partner2, key_info="x509")
    refused(make_gate(), XCA, data, req_from(pki.partner), "FailedAuthentication")
    assert make_gate(partners=[peer])(XCA, envelope(data), req_from(pki.partner))


def test_registered_partners_only(make_gate, tmp_path, pki):
    gate = make_gate(XuaSettings(require_registered_partner=True))
    fault = refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "no partner's" in fault.internal_reason
    assert gate(REGISTRY, envelope(signed(pki)), req_from(pki.partner))  # local: not needed
    ca = pem(tmp_path / "ca.pem", pki.ca)
    known = make_gate(
        XuaSettings(require_registered_partner=True),
        partners=[FakePartner("urn:oid:1.1", "Known", ca=ca)],
    )
    assert known(XCA, envelope(signed(pki)), req_from(pki.partner))


# --- settings ---------------------------------------------------------------------------------


def test_clock_skew_and_audience_come_from_the_settings(make_gate, pki):
    late = signed(pki, conditions=(-20 * MIN, -2 * MIN))
    assert make_gate()(XCA, envelope(late), req_from(pki.partner))
    strict = make_gate(XuaSettings(clock_skew_seconds=60))
    refused(
        strict,
        XCA,
        signed(pki, conditions=(-20 * MIN, -2 * MIN)),
        req_from(pki.partner),
        "MessageExpired",
    )
    audience = make_gate(XuaSettings(audience=("https://gateway.example.org/xca/query",)))
    refused(audience, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")


def test_role_allow_list(make_gate, pki):
    assert make_gate(XuaSettings(role_codes=("307969004",)))(
        XCA, envelope(signed(pki)), req_from(pki.partner)
    )
    refused(
        make_gate(XuaSettings(role_codes=("1",))),
        XCA,
        signed(pki),
        req_from(pki.partner),
        "InvalidSecurityToken",
    )


# --- failures that are ours, not the peer's ---------------------------------------------------


def test_a_replay_cache_failure_is_not_a_refusal(pki, clock, recorded, tmp_path):
    class Broken:
        def add_if_absent(self, key, expires_at):
            raise RuntimeError("database down")

    trust = load_trust(FakeConfig(tls=FakeTls(pem(tmp_path / "t.pem", pki.ca))), XuaSettings())
    gate = XuaGate(
        settings=XuaSettings(), trust=trust, replay_cache=Broken(), clock=clock, record=recorded
    )
    with pytest.raises(RuntimeError):
        gate(XCA, envelope(signed(pki)), req_from(pki.partner))
    assert recorded.refusals == []


def test_internal_reasons_are_cleaned_for_the_log():
    assert clean("a\nb\x00c") == "a b c"
    assert len(clean("x" * 1000)) == 300
