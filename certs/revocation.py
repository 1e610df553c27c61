"""Is a certificate revoked? From CRL files, and from OCSP when a responder is configured.

A CRL only counts when its issuer's signature on it verifies; a CRL past its
nextUpdate still answers "revoked" for what it lists but is reported stale.
OCSP is asked only when a responder URL is configured (never the URL found in
the certificate: the gateway must not call out to addresses a certificate
names), with a short timeout; an unreachable responder answers "unknown".
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

GOOD, REVOKED, UNKNOWN, STALE = "good", "revoked", "unknown", "stale"
OCSP_TIMEOUT_S = 5.0


def load_crl(path: Path) -> x509.CertificateRevocationList:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def crl_status(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList],
    now: datetime | None = None,
) -> str:
    """``revoked``, ``good``, ``stale`` (the only CRL is out of date) or ``unknown`` (no CRL)."""
    now = now or datetime.now(UTC)
    status = UNKNOWN
    for crl in crls:
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
            continue
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return REVOKED
        fresh = crl.next_update_utc is None or crl.next_update_utc > now
        if fresh:
            status = GOOD
        elif status == UNKNOWN:
            status = STALE
    return status


def ocsp_status(
    cert: x509.Certificate, issuer: x509.Certificate, url: str, *, timeout: float = OCSP_TIMEOUT_S
) -> str:
    """Ask the configured responder at ``url``; ``unknown`` when it cannot answer."""
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    )
    http = urllib.request.Request(
        url,
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as resp:  # noqa: S310 - configured URL
            answer = ocsp.load_der_ocsp_response(resp.read())
    except (OSError, ValueError):
        return UNKNOWN
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return UNKNOWN
    if answer.serial_number != cert.serial_number or not _signed_by(answer, issuer):
        return UNKNOWN
    if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        return REVOKED
    return GOOD if answer.certificate_status == ocsp.OCSPCertStatus.GOOD else UNKNOWN


def _signed_by(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    """Only responses signed by the issuer itself are taken (no delegated responders yet)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(),
                       answer.signature_hash_algorithm)
        else:
            from cryptography.hazmat.primitives.asymmetric import ec

            key.verify(answer.signature, answer.tbs_response_bytes,
                       ec.ECDSA(answer.signature_hash_algorithm))
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def revocation_status(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList] = (),
    *,
    ocsp_url: str | None = None,
    now: datetime | None = None,
) -> str:
    """CRLs first; OCSP when they do not know and a responder is configured."""
    status = crl_status(cert, issuer, crls, now)
    if status in (REVOKED, GOOD) or not ocsp_url:
        return status
    answer = ocsp_status(cert, issuer, ocsp_url)
    return answer if answer != UNKNOWN else status
