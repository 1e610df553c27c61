"""What the XUA gate needs from configuration, loaded once per worker at start-up.

``XuaSettings`` is the ``[xua]`` table of gateway.toml (``gateway.config.Xua``);
per-partner quirks are read from each ``[[partners]]`` entry.

Trust: the TLS trust store and every partner's ``ca`` file are the anchors a
SAML signer must chain to. CA certificates become roots; a non-CA certificate
in those files is a pinned signer (a partner's own, possibly self-signed,
certificate). A partner is recognised by its TLS client certificate: issued
directly by one of the CAs in its ``ca`` file, or equal to one of its pinned
certificates.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from profiles.xua import TrustAnchors, XuaPolicy

# Roles whose routes face other communities (/xca/*, /xcpd, /xdr): XUA is required there.
PARTNER_ROLES = frozenset({"responding_gateway", "xcpd", "xdr"})


@dataclass(frozen=True)
class XuaSettings:
    """The ``[xua]`` table. Defaults are the production ones."""

    # false is for development only: partner endpoints then accept mutual TLS alone
    # (an assertion that is sent is still verified). Logged at every start.
    required_on_partner_endpoints: bool = True
    clock_skew_seconds: float = 300.0
    # AudienceRestriction values that name this gateway; empty: not checked.
    audience: tuple[str, ...] = ()
    # true: a TLS client that matches no [[partners]] entry is refused on partner endpoints.
    require_registered_partner: bool = False
    timestamp_max_age_seconds: float = 300.0
    max_assertion_age_seconds: float = 3600.0
    # SNOMED CT role codes accepted; empty: any SNOMED CT concept id.
    role_codes: tuple[str, ...] = ()

    def policy(self, quirks: PartnerQuirks | None = None) -> XuaPolicy:
        q = quirks or PartnerQuirks()
        return XuaPolicy(
            clock_skew=timedelta(seconds=self.clock_skew_seconds),
            allow_sha1=q.allow_sha1,
            accept_purpose_for_use=q.purpose_for_use,
            audiences=frozenset(self.audience),
            role_codes=frozenset(self.role_codes) if self.role_codes else None,
            timestamp_max_age=timedelta(seconds=self.timestamp_max_age_seconds),
            max_assertion_age=timedelta(seconds=self.max_assertion_age_seconds),
            allow_bearer=q.allow_bearer,
            allow_assertion_reuse=q.allow_assertion_reuse,
        )


@dataclass(frozen=True)
class PartnerQuirks:
    """Per-partner loosenings of the strict policy, each off unless the partner needs it."""

    allow_sha1: bool = False  # RSA-SHA1 signatures (CONNECT's default, Metriport)
    purpose_for_use: bool = False  # the 2010 hl7:PurposeForUse element
    allow_bearer: bool = False  # an extra bearer SubjectConfirmation (old CONNECT)
    allow_assertion_reuse: bool = False  # one assertion for many messages (fresh Timestamps)
    signing_certificates: Path | None = None  # PEM: its SAML signing certificates, pinned

    @classmethod
    def of(cls, partner: Any) -> PartnerQuirks:
        return cls(
            allow_sha1=bool(getattr(partner, "allow_sha1", False)),
            purpose_for_use=bool(getattr(partner, "purpose_for_use", False)),
            allow_bearer=bool(getattr(partner, "allow_bearer", False)),
            allow_assertion_reuse=bool(getattr(partner, "allow_assertion_reuse", False)),
            signing_certificates=getattr(partner, "signing_certificates", None),
        )


def settings_of(config: Any) -> XuaSettings:
    """``[xua]`` from the configuration (gateway.config.Xua has the same fields)."""
    found = getattr(config, "xua", None)
    if found is None or isinstance(found, XuaSettings):
        return found or XuaSettings()
    return XuaSettings(**dataclasses.asdict(found))


@dataclass(frozen=True)
class PartnerTrust:
    """One registered partner as the gate sees it."""

    name: str
    home_community_id: str
    authorities: tuple[x509.Certificate, ...]  # CAs that issue its certificates
    certificates: tuple[x509.Certificate, ...]  # its own certificates, trusted as pinned
    policy: XuaPolicy

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` is this partner's: pinned, or signed by one of its CAs."""
        if any(cert == own for own in self.certificates):
            return True
        for ca in self.authorities:
            if cert.issuer != ca.subject:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False


@dataclass
class PartnerDirectory:
    """Which partners a TLS client certificate may belong to (cached per certificate)."""

    partners: tuple[PartnerTrust, ...] = ()
    cache_size: int = 256
    _cache: OrderedDict[bytes, tuple[PartnerTrust, ...]] = field(
        init=False, default_factory=OrderedDict
    )
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def candidates(self, cert: x509.Certificate | None) -> tuple[PartnerTrust, ...]:
        if cert is None or not self.partners:
            return ()
        key = cert.fingerprint(hashes.SHA256())
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        found = tuple(p for p in self.partners if p.issued(cert))
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _read(path: Path | None) -> list[x509.Certificate]:
    if path is None:
        return []
    return list(x509.load_pem_x509_certificates(Path(path).read_bytes()))


def _split(certs: Iterable[x509.Certificate]) -> tuple[list, list]:
    cas, leaves = [], []
    for cert in certs:
        (cas if is_ca(cert) else leaves).append(cert)
    return cas, leaves


def _unique(certs: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    out: list[x509.Certificate] = []
    for cert in certs:
        if all(cert != seen for seen in out):
            out.append(cert)
    return tuple(out)


@dataclass(frozen=True)
class TrustMaterial:
    anchors: TrustAnchors
    partners: tuple[PartnerTrust, ...]


def load_trust(config: Any, settings: XuaSettings) -> TrustMaterial:
    """Anchors from ``[tls] trust_store`` and the partners' files; raises on unreadable files."""
    tls = getattr(config, "tls", None)
    roots, pinned = _split(_read(tls.trust_store if tls is not None else None))
    partners = []
    for partner in getattr(config, "partners", ()):
        quirks = PartnerQuirks.of(partner)
        cas, own = _split(_read(getattr(partner, "ca", None)))
        own += _read(quirks.signing_certificates)
        roots += cas
        partners.append(
            PartnerTrust(
                name=partner.name or partner.home_community_id,
                home_community_id=partner.home_community_id,
                authorities=_unique(cas),
                certificates=_unique(own),
                policy=settings.policy(quirks),
            )
        )
    anchors = TrustAnchors(roots=_unique(roots), pinned=_unique(pinned))
    return TrustMaterial(anchors, tuple(partners))
