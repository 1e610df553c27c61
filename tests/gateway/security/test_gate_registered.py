"""The XUA gate and partners registered with ``partners add`` (the database): known to
the identity check (certificate <-> homeCommunityId) as they come and go, without a
new gate, their CA a trust anchor for the SAML signature."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.partners import Partner, PartnerDirectory, Quirks
from gateway.security import XuaGate, XuaSettings
from gateway.security.replay import SqlReplayCache
from gateway.security.settings import load_trust
from tests.gateway.security.conftest import FakeConfig, FakePartner, FakeTls, pem
from tests.gateway.security.messages import envelope, req_from, signed
from tests.gateway.security.test_gate import XCA, refused

CLAIMED = "urn:oid:1.1"  # the homeCommunityId the test assertions carry


@pytest.fixture
def stores(db, tmp_path, pki):
    """(directory of the database's partners, trust store without the partners' CA)."""
    directory = PartnerDirectory((), db, ttl=0)
    other_ca = pem(tmp_path / "ours.pem", pki.intermediate)  # not the partner's issuer
    return directory, other_ca


def _gate(db, clock, recorded, trust_store, directory, settings=None, partners=()):
    settings = settings or XuaSettings()
    config = FakeConfig(tls=FakeTls(trust_store), partners=tuple(partners))
    return XuaGate(settings=settings, trust=load_trust(config, settings),
                   replay_cache=SqlReplayCache(db, clock=clock), clock=clock,
                   record=recorded, registered=directory.registered)


def _partner(pki, home: str = CLAIMED, **quirks) -> Partner:
    return Partner(home, f"partner {home}", {"ITI-38": "https://localhost:9/xca/query"},
                   pki.ca.cert.public_bytes(Encoding.PEM), quirks=Quirks(**quirks))


def test_a_registered_partner_is_recognised_and_forgotten_without_a_new_gate(
    db, clock, recorded, stores, pki
):
    directory, trust_store = stores
    gate = _gate(db, clock, recorded, trust_store, directory,
                 XuaSettings(require_registered_partner=True))
    fault = refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "no partner's" in fault.internal_reason

    directory.add(_partner(pki))
    principal = gate(XCA, envelope(signed(pki)), req_from(pki.partner))
    assert principal.home_community_id == CLAIMED

    directory.remove(CLAIMED)
    refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")


def test_its_certificate_claiming_another_community_is_refused(
    db, clock, recorded, stores, pki
):
    directory, trust_store = stores
    directory.add(_partner(pki, "urn:oid:2.2"))
    gate = _gate(db, clock, recorded, trust_store, directory)
    fault = refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "is not the partner's" in fault.internal_reason
    assert recorded.refusals[-1].partner == "partner urn:oid:2.2"


def test_its_ca_anchors_the_signature_and_its_quirks_apply(db, clock, recorded, stores, pki):
    directory, trust_store = stores
    gate = _gate(db, clock, recorded, trust_store, directory)
    sha1 = signed(pki, hash="sha1")
    fault = refused(gate, XCA, signed(pki), req_from(pki.partner), "FailedAuthentication")
    assert "does not chain to the anchors" in fault.internal_reason  # not an anchor yet
    directory.add(_partner(pki))
    assert gate(XCA, envelope(signed(pki)), req_from(pki.partner))
    refused(gate, XCA, sha1, req_from(pki.partner), "FailedCheck")
    directory.add(_partner(pki, signature_hash="sha1"), replace=True)
    assert gate(XCA, envelope(sha1), req_from(pki.partner)).assertion.signature_method.endswith(
        "rsa-sha1")
    directory.add(_partner(pki), replace=True)  # strict again: SHA-1 refused
    refused(gate, XCA, sha1, req_from(pki.partner), "FailedCheck")


def test_gateway_toml_wins_over_a_database_row_with_the_same_community(
    db, clock, recorded, stores, pki, tmp_path
):
    directory, trust_store = stores
    configured = FakePartner(CLAIMED, "from gateway.toml", ca=pem(tmp_path / "p.pem", pki.ca))
    gate = _gate(db, clock, recorded, trust_store, directory, partners=[configured])
    directory.add(_partner(pki, "urn:oid:2.2"))  # same CA, another community
    assert gate(XCA, envelope(signed(pki)), req_from(pki.partner)).home_community_id == CLAIMED
    # A row for the configured community itself (left from before it was configured)
    # does not make the certificate fit two partners.
    PartnerDirectory((), db).add(_partner(pki, CLAIMED))
    assert gate(XCA, envelope(signed(pki)), req_from(pki.partner)).home_community_id == CLAIMED


def test_an_unreadable_database_keeps_the_last_known_partners(
    db, clock, recorded, stores, pki, caplog
):
    directory, trust_store = stores
    directory.add(_partner(pki))
    failing = {"now": False}

    def source():
        if failing["now"]:
            raise RuntimeError("database down")
        return directory.registered()

    settings = XuaSettings(require_registered_partner=True)
    config = FakeConfig(tls=FakeTls(trust_store))
    gate = XuaGate(settings=settings, trust=load_trust(config, settings),
                   replay_cache=SqlReplayCache(db, clock=clock), clock=clock,
                   record=recorded, registered=source)
    assert gate(XCA, envelope(signed(pki)), req_from(pki.partner))
    failing["now"] = True
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        assert gate(XCA, envelope(signed(pki)), req_from(pki.partner))
    assert "last known stay in force" in caplog.text
