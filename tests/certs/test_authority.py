"""The development CA: what its certificates say, and how their keys are written."""

from __future__ import annotations

import ipaddress
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import DNSName, verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import authority
from certs.store import load_certificate, load_private_key


@pytest.fixture(scope="module")
def ca() -> authority.Credential:
    return authority.create_authority("Test CA")


@pytest.fixture(scope="module")
def leaf(ca) -> authority.Credential:
    return authority.issue(ca, "gw.example.test", extra_names=["gw.example.test", "10.1.2.3"])


def _ext(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_a_marked_self_signed_ca(ca):
    cert = ca.certificate
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == [authority.DEV_ORGANIZATION]
    assert "NOT FOR PRODUCTION" in authority.DEV_ORGANIZATION
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert isinstance(ca.private_key, rsa.RSAPrivateKey) and ca.private_key.key_size == 2048


def test_leaf_is_rsa_2048_for_tls_both_ways_and_signing(ca, leaf):
    cert = leaf.certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.issuer == ca.certificate.subject
    assert cert.public_key().key_size == 2048
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw.example.test"
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == [authority.DEV_ORGANIZATION]
    assert _ext(cert, x509.BasicConstraints).value.ca is False
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.key_encipherment
    assert not ku.value.key_cert_sign and not ku.value.content_commitment
    eku = list(_ext(cert, x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaf_names_loopback_and_the_extra_names_once(leaf):
    san = _ext(leaf.certificate, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gw.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.1.2.3"),
    ]


def test_leaf_verifies_as_server_and_client_against_the_ca(ca, leaf):
    """cryptography's path validator (RFC 5280 + CA/B rules) accepts the chain both ways."""
    store = verification.Store([ca.certificate])
    now = datetime.now(UTC)
    server = (
        verification.PolicyBuilder()
        .store(store)
        .time(now)
        .build_server_verifier(DNSName("localhost"))
    )
    chain = server.verify(leaf.certificate, [])
    assert chain[-1] == ca.certificate
    client = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    assert client.verify(leaf.certificate, []).chain[-1] == ca.certificate


def test_leaf_from_another_ca_does_not_verify(ca):
    other = authority.create_authority("Other CA")
    stranger = authority.issue(other, "stranger")
    store = verification.Store([ca.certificate])
    verifier = verification.PolicyBuilder().store(store).build_client_verifier()
    with pytest.raises(verification.VerificationError):
        verifier.verify(stranger.certificate, [])


def test_default_validity_starts_a_little_in_the_past(ca, leaf):
    now = datetime.now(UTC)
    cert = leaf.certificate
    assert now - timedelta(minutes=10) < cert.not_valid_before_utc < now
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(days=authority.LEAF_DAYS)
    ca_lifetime = ca.certificate.not_valid_after_utc - ca.certificate.not_valid_before_utc
    assert ca_lifetime == timedelta(days=authority.CA_DAYS)


def test_expired_and_not_yet_valid_leaves(ca):
    now = datetime.now(UTC).replace(microsecond=0)
    expired = authority.issue(
        ca, "old", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    ).certificate
    assert expired.not_valid_after_utc == now - timedelta(days=1)
    future = authority.issue(ca, "new", not_before=now + timedelta(days=2), days=10).certificate
    assert future.not_valid_before_utc == now + timedelta(days=2)
    assert future.not_valid_after_utc == now + timedelta(days=12)

    store = verification.Store([ca.certificate])
    verifier = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    for cert in (expired, future):
        with pytest.raises(verification.VerificationError):
            verifier.verify(cert, [])


def test_validity_must_not_be_empty(ca):
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="later"):
        authority.issue(ca, "x", not_before=now, not_after=now)


def test_serial_numbers_differ(ca):
    key = authority.new_key()  # one key, two certificates: only the serial must differ
    a = authority.issue(ca, "a", key=key).certificate
    b = authority.issue(ca, "a", key=key).certificate
    assert a.serial_number != b.serial_number


def test_save_writes_the_key_owner_only_whatever_the_umask(tmp_path, leaf):
    old = os.umask(0)  # the most permissive umask must not widen the key's mode
    try:
        leaf.save(tmp_path / "leaf.pem", tmp_path / "leaf-key.pem")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "leaf-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "leaf.pem").stat().st_mode) == 0o644
    assert load_certificate(tmp_path / "leaf.pem") == leaf.certificate
    key = load_private_key(tmp_path / "leaf-key.pem")
    assert key.private_numbers() == leaf.private_key.private_numbers()


def test_save_refuses_to_overwrite_unless_told(tmp_path, leaf):
    key_path = tmp_path / "k.pem"
    key_path.write_text("old")
    key_path.chmod(0o644)
    with pytest.raises(FileExistsError):
        leaf.save(tmp_path / "c.pem", key_path)
    assert key_path.read_text() == "old"
    leaf.save(tmp_path / "c.pem", key_path, overwrite=True)
    # An existing file's mode is tightened, not kept.
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_path.read_bytes()
