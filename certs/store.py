"""Reading PEM keys, certificates and chains, and how long a certificate has left.

Small on purpose: the certificate manager (rotation, partner trust stores)
builds on these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

WARNING_DAYS = 30


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate in a PEM file (a leaf, or a chain's leaf)."""
    return load_certificates(path)[0]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a chain or a trust store), in file order."""
    certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    if not certs:  # pragma: no cover - cryptography raises first
        raise ValueError(f"{path}: no certificate")
    return certs


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    """A PEM private key; parse it once and keep the object (parsing costs ~30 ms for RSA)."""
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=password)


def key_matches(certificate: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """True when ``key`` is the private half of ``certificate``'s public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == certificate.public_key().public_bytes(
        der, spki
    )


def validity_status(
    cert: x509.Certificate, now: datetime | None = None, *, warning_days: int = WARNING_DAYS
) -> str:
    """``ok``, ``expiring`` (within ``warning_days``), ``expired`` or ``not_yet_valid``."""
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        return "expired"
    if cert.not_valid_before_utc > now:
        return "not_yet_valid"
    if (cert.not_valid_after_utc - now).total_seconds() < warning_days * 86400:
        return "expiring"
    return "ok"


def certificate_status(
    path: Path, now: datetime | None = None, *, warning_days: int = WARNING_DAYS
) -> dict[str, Any]:
    """What ``/healthz`` reports for the certificate in ``path``; never raises.

    Keys: ``file``, and ``status`` (``unreadable`` when the file cannot be read
    as PEM, else as ``validity_status``), ``subject``, ``not_after``, ``days_left``.
    """
    now = now or datetime.now(UTC)
    path = Path(path)
    try:
        cert = load_certificate(path)
    except (OSError, ValueError):
        return {"file": path.name, "status": "unreadable"}
    days_left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    return {
        "file": path.name,
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": int(days_left),
        "status": validity_status(cert, now, warning_days=warning_days),
    }
