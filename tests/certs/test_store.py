"""Loading PEM files and reporting how long a certificate has left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certs import authority, store


@pytest.fixture(scope="module")
def ca() -> authority.Credential:
    return authority.create_authority("Store test CA")


@pytest.fixture(scope="module")
def leaf(ca) -> authority.Credential:
    return authority.issue(ca, "leaf")


def test_chain_file_loads_in_order(tmp_path, ca, leaf):
    chain = tmp_path / "chain.pem"
    chain.write_bytes(leaf.certificate_pem() + ca.certificate_pem())
    assert store.load_certificates(chain) == [leaf.certificate, ca.certificate]
    assert store.load_certificate(chain) == leaf.certificate


def test_not_a_certificate(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    with pytest.raises(ValueError):
        store.load_certificates(bad)


def test_key_matches_its_certificate_only(tmp_path, ca, leaf):
    path = tmp_path / "key.pem"
    path.write_bytes(leaf.private_key_pem())
    key = store.load_private_key(path)
    assert store.key_matches(leaf.certificate, key)
    assert not store.key_matches(ca.certificate, key)


NOW = datetime(2030, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (NOW - timedelta(days=10), NOW + timedelta(days=100), "ok"),
        (NOW - timedelta(days=10), NOW + timedelta(days=29), "expiring"),
        (NOW - timedelta(days=10), NOW - timedelta(seconds=1), "expired"),
        (NOW - timedelta(days=10), NOW, "expired"),
        (NOW + timedelta(days=1), NOW + timedelta(days=100), "not_yet_valid"),
    ],
)
def test_validity_status(ca, start, end, expected):
    cert = authority.issue(ca, "x", not_before=start, not_after=end).certificate
    assert store.validity_status(cert, NOW) == expected


def test_warning_days_is_a_parameter(ca):
    cert = authority.issue(ca, "x", not_before=NOW, days=60).certificate
    assert store.validity_status(cert, NOW) == "ok"
    assert store.validity_status(cert, NOW, warning_days=90) == "expiring"


def test_certificate_status_report(tmp_path, ca):
    cert = authority.issue(ca, "gateway", not_before=NOW - timedelta(days=1), days=11)
    path = tmp_path / "gateway.pem"
    path.write_bytes(cert.certificate_pem())
    report = store.certificate_status(path, NOW)
    assert report == {
        "file": "gateway.pem",
        "subject": cert.certificate.subject.rfc4514_string(),
        "not_after": (NOW + timedelta(days=10)).isoformat(),
        "days_left": 10,
        "status": "expiring",
    }


def test_certificate_status_never_raises(tmp_path):
    assert store.certificate_status(tmp_path / "missing.pem") == {
        "file": "missing.pem",
        "status": "unreadable",
    }
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert store.certificate_status(garbage)["status"] == "unreadable"
