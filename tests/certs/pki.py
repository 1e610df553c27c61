"""PKIs built in the tests: root -> intermediate -> leaf, with the faults we must catch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import Credential, key_usage

NOW = datetime.now(UTC)
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER = ExtendedKeyUsageOID.SERVER_AUTH
_KEYS: list[rsa.RSAPrivateKey] = []


def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test PKI")])


def make(
    cn: str,
    issuer: Credential | None = None,
    *,
    ca: bool = False,
    eku: tuple = (CLIENT, SERVER),
    start: datetime | None = None,
    end: datetime | None = None,
    private_key: rsa.RSAPrivateKey | None = None,
) -> Credential:
    """A CA (``ca=True``; self-signed without ``issuer``) or a leaf for localhost."""
    k = private_key or key()
    start = start or NOW - timedelta(days=1)
    end = end or NOW + timedelta(days=365)
    signer_key = issuer.private_key if issuer else k
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.certificate.subject if issuer else _name(cn))
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return Credential(builder.sign(signer_key, hashes.SHA256()), k)


def crl(issuer: Credential, revoked: list[x509.Certificate], *, next_update: datetime | None = None,
        signer: rsa.RSAPrivateKey | None = None) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(NOW - timedelta(days=10))
        .next_update(next_update or NOW + timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - timedelta(minutes=5))
            .build()
        )
    return builder.sign(signer or issuer.private_key, hashes.SHA256())
