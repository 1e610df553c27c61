"""Does a certificate chain to a trusted anchor, for the purpose it will serve?

Built on ``cryptography.x509.verification`` (RFC 5280 path building). The
extended key usage is checked here first so a wrong-purpose certificate gets a
message saying so rather than a path-building error. A certificate that is
itself in the trust store (a pinned partner certificate) is accepted when it is
in its validity period and fit for the purpose, as OpenSSL's partial-chain
mode accepts it at the TLS handshake.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

PURPOSES = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}


class ChainError(ValueError):
    """The chain does not verify; the message says why in a person's words."""


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def fit_for(cert: x509.Certificate, purpose: str) -> bool:
    """Whether the EKU allows ``purpose`` (no EKU extension: any purpose)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return PURPOSES[purpose] in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _in_period(cert: x509.Certificate, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise ChainError(f"{describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise ChainError(
            f"{describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}"
        )


def describe(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()!r}"


def _server_name(cert: x509.Certificate) -> v.DNSName | v.IPAddress:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ChainError(f"{describe(cert)} has no subjectAltName") from None
    for ip in san.get_values_for_type(x509.IPAddress):
        return v.IPAddress(ip)
    for name in san.get_values_for_type(x509.DNSName):
        return v.DNSName(name)
    raise ChainError(f"{describe(cert)} names no host in its subjectAltName")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    purpose: str = "client",
    now: datetime | None = None,
) -> list[x509.Certificate]:
    """The verified chain, leaf first, ending at an anchor; raises ChainError.

    ``purpose``: ``client`` or ``server`` authentication. ``anchors`` may hold
    CAs and pinned leaves.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}")
    now = now or datetime.now(UTC)
    if not fit_for(leaf, purpose):
        raise ChainError(f"{describe(leaf)} is not for TLS {purpose} authentication (its EKU)")
    _in_period(leaf, now)
    if any(leaf == a for a in anchors):
        return [leaf]  # pinned
    roots = [a for a in anchors if is_ca(a)]
    if not roots:
        raise ChainError("the trust store holds no CA certificate")
    builder = v.PolicyBuilder().store(v.Store(roots)).time(now.replace(tzinfo=None))
    try:
        if purpose == "client":
            chain = builder.build_client_verifier().verify(leaf, list(intermediates)).chain
        else:
            verifier = builder.build_server_verifier(_server_name(leaf))
            chain = verifier.verify(leaf, list(intermediates))
    except v.VerificationError as exc:
        for cert in intermediates:
            _in_period(cert, now)  # a lapsed intermediate: say so plainly
        raise ChainError(f"{describe(leaf)} does not chain to a trusted CA: {exc}") from None
    return list(chain)
