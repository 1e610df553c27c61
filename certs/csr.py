"""Certificate signing requests with the subject fields an exchange asks for."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certs.authority import subject_alternative_names


def build_csr(
    key,
    *,
    common_name: str,
    organization: str | None = None,
    unit: str | None = None,
    locality: str | None = None,
    state: str | None = None,
    country: str | None = None,
    email: str | None = None,
    names: Iterable[str] = (),
) -> bytes:
    """A PEM CSR signed by ``key``; the CN is also the first subjectAltName."""
    if country is not None and len(country) != 2:
        raise ValueError("--c must be a two-letter country code (e.g. US)")
    fields = [
        (NameOID.COUNTRY_NAME, country),
        (NameOID.STATE_OR_PROVINCE_NAME, state),
        (NameOID.LOCALITY_NAME, locality),
        (NameOID.ORGANIZATION_NAME, organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        (NameOID.COMMON_NAME, common_name),
        (NameOID.EMAIL_ADDRESS, email),
    ]
    subject = x509.Name([x509.NameAttribute(oid, v) for oid, v in fields if v])
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(
            x509.SubjectAlternativeName(subject_alternative_names([common_name, *names])),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)
