"""The partner directory: endpoints from a base URL, quirks, gateway.toml entries and
CLI-managed rows (SQLite, or PostgreSQL with GATEWAY_TEST_DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.partners import Partner, PartnerDirectory, PartnerError, Quirks, endpoints_for
from gateway.partners.model import partner_from_table
from gateway.store.db import Database
from gateway.store.migrate import ensure_current

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_endpoints_follow_our_layout_and_can_be_overridden():
    found = endpoints_for("https://va.example/gw/", {"ITI-38": "https://q.example/Query"})
    assert found == {
        "ITI-38": "https://q.example/Query",
        "ITI-39": "https://va.example/gw/xca/retrieve",
        "ITI-55": "https://va.example/gw/xcpd",
        "ITI-41": "https://va.example/gw/xdr",
    }
    with pytest.raises(PartnerError, match="not one of"):
        endpoints_for("https://va.example", {"ITI-99": "https://x"})
    with pytest.raises(PartnerError, match="https"):
        endpoints_for("http://va.example")


def test_quirks_are_checked_and_shape_the_saml_policy():
    with pytest.raises(PartnerError, match="signature_hash"):
        Quirks(signature_hash="md5")
    with pytest.raises(PartnerError, match="unknown"):
        Quirks.from_mapping({"sha": "1"})
    p = Partner("1.2.3", "Kno2", endpoints_for("https://k.example"), CA,
                quirks=Quirks(signature_hash="sha1", purpose_element="PurposeForUse",
                              urn_oid_prefix=False))
    policy = p.issue_policy(audience="https://k.example/xca/query")
    assert (policy.hash, policy.purpose_element, policy.oid_prefix) == (
        "sha1", "PurposeForUse", False)
    assert p.home_community_id == "urn:oid:1.2.3" and p.outbound_hcid() == "1.2.3"
    assert p.allow_sha1 and p.purpose_for_use  # what the inbound XUA gate reads


def test_a_toml_table_becomes_a_partner(tmp_path: Path):
    (tmp_path / "ca.pem").write_bytes(CA)
    p = partner_from_table({
        "home_community_id": "urn:oid:urn:oid:2.16.840.1.113883.3.1",
        "name": "DoD", "url": "https://dod.example", "ca": "ca.pem",
        "max_documents_per_retrieve": 3, "endpoints": {"ITI-39": "https://dod.example/r"},
        "quirks": {"repository_urn_oid": True},
    }, base=tmp_path)
    assert p.home_community_id == "urn:oid:2.16.840.1.113883.3.1"
    assert p.ca_pem == CA and p.ca == tmp_path / "ca.pem"
    assert p.endpoint("ITI-39") == "https://dod.example/r"
    assert p.max_documents_per_retrieve == 3 and p.quirks.repository_urn_oid
    with pytest.raises(PartnerError, match="unknown"):
        partner_from_table({"home_community_id": "1.2", "colour": "red"}, base=tmp_path)


@pytest.fixture
def database(database_url: str):
    ensure_current(database_url)
    db = Database(database_url, pool_size=1)
    yield db
    db.dispose()


def test_database_partners_are_added_listed_replaced_and_removed(database):
    configured = Partner("1.1.1", "From file", endpoints_for("https://f.example"), CA)
    directory = PartnerDirectory([configured], database)
    stored = Partner("2.2.2", "From CLI", endpoints_for("https://c.example"), CA,
                     timeout_seconds=7.5, max_documents_per_retrieve=1,
                     quirks=Quirks(purpose_element="PurposeForUse"),
                     base_url="https://c.example", source="database")
    stale = PartnerDirectory([], database, ttl=3600)
    assert stale.all() == []
    directory.add(stored)
    assert stale.get("2.2.2") is None  # read at most once per ttl
    again = PartnerDirectory([configured], database)  # another worker sees it
    assert again.get("2.2.2") == stored
    assert again.get("urn:oid:2.2.2").quirks.purpose_element == "PurposeForUse"
    assert [p.name for p in again.all()] == ["From CLI", "From file"]
    with pytest.raises(PartnerError, match="already"):
        directory.add(stored)
    directory.add(Partner("2.2.2", "Renamed", stored.endpoints, CA), replace=True)
    assert directory.get("2.2.2").name == "Renamed"
    with pytest.raises(PartnerError, match="gateway.toml"):
        directory.add(Partner("1.1.1", "dup", stored.endpoints, CA))
    with pytest.raises(PartnerError, match="gateway.toml"):
        directory.remove("1.1.1")
    assert directory.remove("urn:oid:2.2.2") and not directory.remove("2.2.2")
    assert directory.get("2.2.2") is None
