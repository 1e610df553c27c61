"""Keys and certificates: which signer is trusted, and the key a KeyInfo names.

A key is never trusted because the message carries it. A signer is trusted when its
certificate chains to the exchange's anchors (checked here with ``cryptography``'s
verifier, never with signxml's default public web bundle) or is pinned by the operator.
KeyInfo only helps to *find* the certificate among those the gateway already trusts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import verification
from lxml import etree

from profiles.xua.assertion import DS_NS, DSIG11_NS

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
MIN_RSA_BITS = 2048
_CURVES: dict[str, ec.EllipticCurve] = {
    "urn:oid:1.2.840.10045.3.1.7": ec.SECP256R1(),
    "urn:oid:1.3.132.0.34": ec.SECP384R1(),
    "urn:oid:1.3.132.0.35": ec.SECP521R1(),
}
CURVE_URIS = {type(curve).__name__: uri for uri, curve in _CURVES.items()}


def _key_usage_allows_signing(policy, cert, key_usage) -> None:
    if key_usage is not None and not key_usage.digital_signature:
        raise ValueError("KeyUsage lacks digitalSignature")


# End-entity certificates of health exchanges carry serverAuth/clientAuth EKUs or none;
# what matters for a signer is that KeyUsage, when present, allows signatures.
_EE_POLICY = verification.ExtensionPolicy.permit_all().may_be_present(
    x509.KeyUsage, verification.Criticality.AGNOSTIC, _key_usage_allows_signing
)


@dataclass(frozen=True)
class TrustAnchors:
    """Certificates the operator trusts for signing, loaded once at start-up.

    ``roots``: the exchange CAs a signer must chain to; ``intermediates``: CA certificates
    a partner may omit from KeyInfo; ``pinned``: signer certificates trusted as they are
    (a partner's registered signing certificate, self-signed ones included).
    """

    roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    pinned: tuple[x509.Certificate, ...] = ()
    _store: verification.Store | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        store = verification.Store(list(self.roots)) if self.roots else None
        object.__setattr__(self, "_store", store)

    @classmethod
    def from_pem(
        cls, roots: bytes, *, intermediates: bytes = b"", pinned: bytes = b""
    ) -> TrustAnchors:
        """Build from PEM bundles (bytes the gateway read from its trust store)."""

        def load(pem: bytes) -> tuple[x509.Certificate, ...]:
            return tuple(x509.load_pem_x509_certificates(pem)) if pem.strip() else ()

        return cls(load(roots), load(intermediates), load(pinned))

    def trust_error(
        self,
        cert: x509.Certificate,
        *,
        at: datetime,
        chain: Sequence[x509.Certificate] = (),
        also_pinned: Sequence[x509.Certificate] = (),
    ) -> str | None:
        """None when ``cert`` may sign at ``at``; otherwise why not (for the log only)."""
        bad_key = key_error(cert.public_key())
        if bad_key:
            return bad_key
        if any(cert == p for p in (*self.pinned, *also_pinned)):
            if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
                return f"pinned certificate {subject(cert)} is outside its validity dates"
            return None
        if self._store is None:
            return f"certificate {subject(cert)} is not pinned and no trust anchors are set"
        try:
            (
                verification.PolicyBuilder()
                .store(self._store)
                .time(at)
                .extension_policies(
                    ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                    ee_policy=_EE_POLICY,
                )
                .build_client_verifier()
                .verify(cert, [*chain, *self.intermediates])
            )
        except verification.VerificationError as exc:
            return f"certificate {subject(cert)} does not chain to the anchors: {exc}"
        return None


def subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def spki(key: PublicKey) -> bytes:
    """A key's identity for comparison: its DER SubjectPublicKeyInfo."""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def same_key(a: PublicKey, b: PublicKey) -> bool:
    return spki(a) == spki(b)


def key_error(key: object) -> str | None:
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= MIN_RSA_BITS else f"RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if type(key.curve).__name__ in CURVE_URIS else "unsupported EC curve"
    return f"unsupported key type {type(key).__name__}"


def _b64(el: etree._Element | None) -> bytes:
    if el is None or not el.text:
        raise ValueError(f"missing {etree.QName(el).localname if el is not None else 'value'}")
    try:
        return base64.b64decode("".join(el.text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


def key_value(el: etree._Element) -> PublicKey:
    """The public key in a ds:KeyValue (RSAKeyValue or dsig11:ECKeyValue)."""
    rsa_el = el.find(_ds("RSAKeyValue"))
    if rsa_el is not None:
        n = int.from_bytes(_b64(rsa_el.find(_ds("Modulus"))), "big")
        e = int.from_bytes(_b64(rsa_el.find(_ds("Exponent"))), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    ec_el = el.find(f"{{{DSIG11_NS}}}ECKeyValue")
    if ec_el is not None:
        curve_el = ec_el.find(f"{{{DSIG11_NS}}}NamedCurve")
        curve = _CURVES.get(curve_el.get("URI", "") if curve_el is not None else "")
        if curve is None:
            raise ValueError("unsupported or missing NamedCurve")
        point = _b64(ec_el.find(f"{{{DSIG11_NS}}}PublicKey"))
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    raise ValueError("KeyValue holds no RSA or EC key")


def x509_certificates(key_info: etree._Element) -> list[x509.Certificate]:
    certs = []
    for data in key_info.findall(_ds("X509Data")):
        for el in data.findall(_ds("X509Certificate")):
            certs.append(x509.load_der_x509_certificate(_b64(el)))
    return certs


def leaf_of(certs: Sequence[x509.Certificate]) -> x509.Certificate:
    """The certificate that issued none of the others (XML-DSig implies no order)."""
    for cert in certs:
        if not any(other is not cert and other.issuer == cert.subject for other in certs):
            return cert
    return certs[0]


def key_info_key(key_info: etree._Element) -> tuple[PublicKey | None, list[x509.Certificate]]:
    """The key a KeyInfo states (KeyValue, else the leaf certificate) and its certificates.

    KeyValue and certificate must agree when both are present. Raises ValueError on
    anything malformed or contradictory.
    """
    certs = x509_certificates(key_info)
    kv_el = key_info.find(_ds("KeyValue"))
    kv = key_value(kv_el) if kv_el is not None else None
    cert_key = leaf_of(certs).public_key() if certs else None
    if kv is not None and cert_key is not None and not same_key(kv, cert_key):  # type: ignore[arg-type]
        raise ValueError("KeyValue and X509Certificate name different keys")
    key = kv if kv is not None else cert_key
    if key is not None and not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("unsupported key type")
    return key, certs  # type: ignore[return-value]


def unique(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for cert in certs:
        if all(cert != seen for seen in out):
            out.append(cert)
    return out
