"""A development certificate authority: a CA and the leaf certificates it issues.

For ``ihe-gateway init`` and for tests, never for an exchange: every subject
carries ``O=IHE Gateway DEVELOPMENT CA - NOT FOR PRODUCTION`` so such a
certificate is recognised wherever it turns up. Leaves are RSA-2048 (what
partners expect for SAML signing) and good for TLS server and client
authentication and for signatures, so one gateway key does all three.
Validity is a parameter, so tests can make already-expired or not-yet-valid
certificates.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEV_ORGANIZATION = "IHE Gateway DEVELOPMENT CA - NOT FOR PRODUCTION"
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
KEY_SIZE = 2048
CA_DAYS = 3650
LEAF_DAYS = 397  # the longest lifetime browsers accept; partners' own leaves are similar
# Issue "now" a little in the past so a peer whose clock lags a few minutes accepts it.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key (a CA's or a leaf's)."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """Unencrypted PKCS#8: gunicorn and curl read it without a passphrase."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, certificate: Path, private_key: Path, *, overwrite: bool = False) -> None:
        """Write the certificate (0644) and the key (0600, never readable by others)."""
        write_private_key(private_key, self.private_key_pem(), overwrite=overwrite)
        _write(certificate, self.certificate_pem(), 0o644, overwrite=overwrite)


def write_private_key(path: Path, pem: bytes, *, overwrite: bool = False) -> None:
    """Write ``pem`` to ``path`` with mode 0600 from the first byte on."""
    _write(path, pem, 0o600, overwrite=overwrite)


def _write(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    fd = os.open(path, flags, mode)
    try:
        # O_CREAT's mode does not apply to an existing file, and the umask may differ.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def _validity(
    not_before: datetime | None, not_after: datetime | None, days: float
) -> tuple[datetime, datetime]:
    start = not_before or datetime.now(UTC) - BACKDATE
    end = not_after or start + timedelta(days=days)
    if end <= start:
        raise ValueError("not_after must be later than not_before")
    return start, end


def key_usage(
    *, ca: bool, digital_signature: bool = True, key_encipherment: bool = True
) -> x509.KeyUsage:
    """A CA's key usage (certificates and CRLs, nothing else) or a leaf's (signatures, and
    RSA key transport for TLS); the flags let tests make leaves that lack one."""
    leaf = not ca
    return x509.KeyUsage(
        digital_signature=leaf and digital_signature,
        content_commitment=False,
        key_encipherment=leaf and key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def create_authority(
    common_name: str = "IHE Gateway development CA",
    *,
    organization: str = DEV_ORGANIZATION,
    days: float = CA_DAYS,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> Credential:
    """A self-signed CA that may sign leaves only (path length 0)."""
    key = key or new_key()
    start, end = _validity(not_before, not_after, days)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def subject_alternative_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """``names`` as SAN entries: an IP address where one parses, else a DNS name."""
    entries: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):  # keep order, drop repeats
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return entries


def issue(
    authority: Credential,
    common_name: str,
    *,
    extra_names: Iterable[str] = (),
    days: float = LEAF_DAYS,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> Credential:
    """A leaf for TLS server and client authentication and signing, signed by ``authority``.

    Its SAN holds localhost, 127.0.0.1 and ``extra_names`` (host names or IP addresses).
    Its organization is the authority's, so a development leaf says it is one.
    """
    key = key or new_key()
    start, end = _validity(not_before, not_after, days)
    organizations = authority.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(o.value)) for o in organizations
    ]
    public = key.public_key()
    issuer_public = authority.private_key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(authority.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(subject_alternative_names([*LOOPBACK_NAMES, *extra_names])),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
        .sign(authority.private_key, hashes.SHA256())
    )
    return Credential(cert, key)
