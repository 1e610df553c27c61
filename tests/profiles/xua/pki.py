"""A throw-away PKI for the XUA tests, generated at run time (no key is ever committed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certs.authority import key_usage

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Identity:
    key: PrivateKey
    cert: x509.Certificate

    @property
    def dn(self) -> str:
        return self.cert.subject.rfc4514_string()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "XUA Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key(kind: str) -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    cn: str,
    key: PrivateKey,
    now: datetime,
    issuer: Identity | None,
    valid: tuple[timedelta, timedelta],
    usage: x509.KeyUsage,
) -> x509.CertificateBuilder:
    """What CAs and leaves start with: names, validity around ``now``, basic constraints
    and key usage (a CA's or a leaf's, as ``usage`` says)."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(
            x509.BasicConstraints(ca=usage.key_cert_sign, path_length=None), critical=True
        )
        .add_extension(usage, critical=True)
    )


def _signed(builder: x509.CertificateBuilder, key: PrivateKey, issuer: Identity | None) -> Identity:
    """``builder`` with the issuer's key identifier, signed by the issuer (else by ``key``)."""
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    return Identity(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


def make_ca(
    cn: str,
    now: datetime,
    *,
    issuer: Identity | None = None,
    valid: tuple[timedelta, timedelta] = (timedelta(days=-365), timedelta(days=3650)),
) -> Identity:
    """A root CA (or an intermediate under ``issuer``) that passes web-PKI CA checks."""
    key = _key("rsa")
    builder = _certificate(cn, key, now, issuer, valid, key_usage(ca=True)).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    return _signed(builder, key, issuer)


def make_leaf(
    cn: str,
    now: datetime,
    *,
    issuer: Identity | None,
    kind: str = "rsa",
    valid: tuple[timedelta, timedelta] = (timedelta(days=-30), timedelta(days=365)),
    digital_signature: bool = True,
) -> Identity:
    """A gateway certificate (TLS and signing); self-signed when ``issuer`` is None."""
    key = _key(kind)
    usage = key_usage(ca=False, digital_signature=digital_signature, key_encipherment=kind == "rsa")
    builder = (
        _certificate(cn, key, now, issuer, valid, usage)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"{cn}.test")]), critical=False)
    )
    return _signed(builder, key, issuer)


@dataclass(frozen=True)
class Pki:
    now: datetime
    ca: Identity  # the exchange CA: the only trust anchor
    intermediate: Identity  # under ca; not an anchor, partners send it in KeyInfo
    other_ca: Identity  # a CA nobody trusts
    partner: Identity  # the initiating gateway talking to us (TLS + signing)
    partner2: Identity  # another legitimate member of the exchange
    partner_ec: Identity  # an ECDSA P-256 member
    via_intermediate: Identity  # member certified by the intermediate
    expired: Identity  # issued by ca, expired a day ago
    not_yet_valid: Identity
    foreign: Identity  # issued by other_ca
    attacker: Identity  # self-signed
    gateway: Identity  # us, for issuing


def build_pki(now: datetime) -> Pki:
    ca = make_ca("Exchange Test CA", now)
    intermediate = make_ca("Exchange Test Intermediate", now, issuer=ca)
    other_ca = make_ca("Other CA", now)
    return Pki(
        now=now,
        ca=ca,
        intermediate=intermediate,
        other_ca=other_ca,
        partner=make_leaf("partner", now, issuer=ca),
        partner2=make_leaf("partner2", now, issuer=ca),
        partner_ec=make_leaf("partner-ec", now, issuer=ca, kind="ec"),
        via_intermediate=make_leaf("partner-int", now, issuer=intermediate),
        expired=make_leaf(
            "expired", now, issuer=ca, valid=(timedelta(days=-400), timedelta(days=-1))
        ),
        not_yet_valid=make_leaf(
            "future", now, issuer=ca, valid=(timedelta(days=2), timedelta(days=400))
        ),
        foreign=make_leaf("foreign", now, issuer=other_ca),
        attacker=make_leaf("attacker", now, issuer=None),
        gateway=make_leaf("gateway", now, issuer=ca),
    )
