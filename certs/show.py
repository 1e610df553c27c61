"""What a certificate, CSR, key or PKCS#12 file holds, in words (``certs show``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs.authority import DEV_ORGANIZATION
from certs.inventory import expiry_status, fingerprint, read_certificates
from certs.keys import load_pkcs12
from certs.verify import is_ca


def key_description(key) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size} bit"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def describe_certificate(cert: x509.Certificate, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    days = int((cert.not_valid_after_utc - now).total_seconds() // 86400)
    lines = [
        f"subject      {cert.subject.rfc4514_string()}",
        f"issuer       {cert.issuer.rfc4514_string()}",
        f"serial       {format(cert.serial_number, 'X')}",
        f"sha-256      {fingerprint(cert)}",
        f"valid        {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({days} days left)",
        f"status       {expiry_status(cert, now)}",
        f"key          {key_description(cert.public_key())}",
        f"kind         {'CA' if is_ca(cert) else 'end entity'}"
        + (" (self-signed)" if cert.issuer == cert.subject else ""),
    ]
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        lines.append("purposes     " + ", ".join(getattr(u, "_name", u.dotted_string) for u in eku))
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is not None:
        lines.append("names        " + ", ".join(str(n.value) for n in san))
    if DEV_ORGANIZATION in cert.subject.rfc4514_string() + cert.issuer.rfc4514_string():
        lines.append("WARNING      development certificate: NOT FOR PRODUCTION")
    return lines


def describe_file(path: Path, password: bytes | None = None) -> str:
    """Every certificate in ``path`` (PEM, DER, PKCS#12), or the CSR or key it holds."""
    data = Path(path).read_bytes()
    blocks: list[list[str]] = []
    if b"CERTIFICATE REQUEST" in data:
        csr = x509.load_pem_x509_csr(data)
        blocks.append([f"certificate signing request: {csr.subject.rfc4514_string()}",
                       f"key          {key_description(csr.public_key())}",
                       f"signature    {'valid' if csr.is_signature_valid else 'INVALID'}"])
    elif b"PRIVATE KEY" in data and b"CERTIFICATE" not in data:
        encrypted = b"ENCRYPTED" in data
        blocks.append([f"private key ({'encrypted' if encrypted else 'not encrypted'}); "
                       f"mode {oct(Path(path).stat().st_mode & 0o777)}"])
    else:
        try:
            certs = read_certificates(path)
            key = None
        except ValueError:
            key, certs = load_pkcs12(path, password)
            blocks.append([f"PKCS#12 bundle: {len(certs)} certificate(s), "
                           f"{'a private key' if key else 'no private key'}"])
        for i, cert in enumerate(certs, 1):
            blocks.append([f"certificate {i} of {len(certs)}", *describe_certificate(cert)])
    return "\n\n".join("\n".join(b) for b in blocks)
