"""One partner community as the gateway sees it: endpoints, trust, limits and quirks.

A partner is reached at one endpoint per transaction. Another of our gateways is
registered by its base URL alone (``endpoints_for(base)`` lays our own paths under
it); a gateway laid out differently overrides single transactions. Quirks are the
per-partner departures real gateways need (``../shared/notes/peer-metriport.md`` §8,
``peer-connect.md`` §9), kept as data in one place, as Metriport's ``gateways.ts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from profiles.oid import bare_oid
from profiles.xua import IssuePolicy

# Our own path layout (gateway/dispatch.py), per outbound transaction.
OUR_PATHS: dict[str, str] = {
    "ITI-38": "/xca/query",
    "ITI-39": "/xca/retrieve",
    "ITI-55": "/xcpd",
    "ITI-41": "/xdr",
}
TRANSACTIONS = tuple(OUR_PATHS)
HASHES = ("sha256", "sha384", "sha512", "sha1")
PURPOSE_ELEMENTS = ("PurposeOfUse", "PurposeForUse")
SUBJECT_ID_FORMATS = ("uri", "basic", "unspecified")
NAMESPACE_PLACEMENTS = ("payload", "envelope")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_DOCUMENTS = 10


class PartnerError(ValueError):
    """A partner entry is unusable; the message names the field."""


def hcid(value: str) -> str:
    """The canonical homeCommunityId form we store and compare: ``urn:oid:<oid>``."""
    return f"urn:oid:{bare_oid(value)}"


def endpoints_for(base_url: str, overrides: Mapping[str, str] = ()) -> dict[str, str]:
    """Endpoints of a gateway laid out like ours under ``base_url``, then the overrides."""
    base = base_url.rstrip("/")
    found = {t: base + p for t, p in OUR_PATHS.items()} if base else {}
    for txn, url in dict(overrides).items():
        if txn not in OUR_PATHS:
            raise PartnerError(f"endpoint {txn!r}: not one of {', '.join(TRANSACTIONS)}")
        found[txn] = url
    for txn, url in found.items():
        if not url.startswith("https://"):
            raise PartnerError(f"endpoint {txn}: {url!r} is not an https:// URL")
    return found


@dataclass(frozen=True)
class Quirks:
    """What one partner's stack needs from us (outbound) and lets through (inbound)."""

    signature_hash: str = "sha256"  # SAML/Timestamp signatures; "sha1" for Kno2/CONNECT < 5.3
    purpose_element: str = "PurposeOfUse"  # "PurposeForUse": 2010-era CONNECT, Epic
    urn_oid_prefix: bool = True  # urn:oid: on homeCommunityId in bodies and SAML
    repository_urn_oid: bool = False  # urn:oid: on RepositoryUniqueId (Surescripts refuses it)
    subject_id_format: str = "uri"  # subject-id NameFormat: eHx hub wants "basic" for some
    namespace_placement: str = "payload"  # declare body namespaces on the payload root
    allow_bearer: bool = False  # inbound: extra bearer SubjectConfirmation (old CONNECT)
    allow_assertion_reuse: bool = False  # inbound: one assertion, many messages

    def __post_init__(self) -> None:
        for name, allowed in (
            ("signature_hash", HASHES),
            ("purpose_element", PURPOSE_ELEMENTS),
            ("subject_id_format", SUBJECT_ID_FORMATS),
            ("namespace_placement", NAMESPACE_PLACEMENTS),
        ):
            if getattr(self, name) not in allowed:
                raise PartnerError(f"quirks.{name}: must be one of {', '.join(allowed)}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Quirks:
        known = {f.name: f for f in fields(cls)}
        extra = sorted(set(data) - set(known))
        if extra:
            raise PartnerError(f"quirks: unknown key(s) {', '.join(extra)}")
        for name, value in data.items():
            want = bool if isinstance(getattr(cls(), name), bool) else str
            if not isinstance(value, want):
                raise PartnerError(f"quirks.{name}: expected {want.__name__}")
        return cls(**dict(data))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def differences(self) -> dict[str, Any]:
        """Only what departs from the defaults (for listings and storage)."""
        default = Quirks()
        return {k: v for k, v in self.as_dict().items() if getattr(default, k) != v}


@dataclass(frozen=True)
class Partner:
    """A partner community. ``ca_pem``: the CA(s) its server certificate must chain to."""

    home_community_id: str
    name: str
    endpoints: Mapping[str, str]
    ca_pem: bytes | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_S
    max_documents_per_retrieve: int = DEFAULT_MAX_DOCUMENTS
    quirks: Quirks = field(default_factory=Quirks)
    base_url: str = ""
    source: str = "config"  # "config" (gateway.toml) or "database" (CLI-managed)
    ca_path: Path | None = None
    # PEM of the partner's SAML signing certificates, pinned for inbound XUA.
    signing_certificates: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "home_community_id", hcid(self.home_community_id))
        if not bare_oid(self.home_community_id).replace(".", "").isdigit():
            raise PartnerError(f"home_community_id {self.home_community_id!r} is not an OID")
        if self.timeout_seconds <= 0:
            raise PartnerError("timeout_seconds must be greater than zero")
        if self.max_documents_per_retrieve < 1:
            raise PartnerError("max_documents_per_retrieve must be at least 1")

    def endpoint(self, transaction: str) -> str | None:
        return self.endpoints.get(transaction)

    @property
    def bare_oid(self) -> str:
        return bare_oid(self.home_community_id)

    def outbound_hcid(self) -> str:
        """The partner's homeCommunityId as it wants to read it in our requests."""
        return self.home_community_id if self.quirks.urn_oid_prefix else self.bare_oid

    def issue_policy(self, *, audience: str | None = None) -> IssuePolicy:
        """How to sign the SAML assertion we send this partner (profiles.xua)."""
        return IssuePolicy(
            hash=self.quirks.signature_hash,
            purpose_element=self.quirks.purpose_element,
            oid_prefix=self.quirks.urn_oid_prefix,
            audience=audience,
        )

    # What gateway.security.settings.PartnerQuirks.of reads (inbound verification).
    @property
    def ca(self) -> Path | None:
        return self.ca_path

    @property
    def allow_sha1(self) -> bool:
        return self.quirks.signature_hash == "sha1"

    @property
    def purpose_for_use(self) -> bool:
        return self.quirks.purpose_element == "PurposeForUse"

    @property
    def allow_bearer(self) -> bool:
        return self.quirks.allow_bearer

    @property
    def allow_assertion_reuse(self) -> bool:
        return self.quirks.allow_assertion_reuse


def partner_from_table(raw: Mapping[str, Any], *, base: Path) -> Partner:
    """A ``[[partners]]`` table of gateway.toml -> Partner (paths relative to ``base``).

    Keys: home_community_id, name, url (base URL), ca (PEM file), timeout_seconds,
    max_documents_per_retrieve, [partners.endpoints] ("ITI-38" = URL) and
    [partners.quirks] (the Quirks fields).
    """
    known = {"home_community_id", "name", "url", "ca", "timeout_seconds",
             "max_documents_per_retrieve", "endpoints", "quirks", "signing_certificates"}
    extra = sorted(set(raw) - known)
    if extra:
        raise PartnerError(f"unknown key(s) {', '.join(extra)}")
    if "home_community_id" not in raw:
        raise PartnerError("home_community_id: required")
    ca_path = (base / raw["ca"]).resolve() if raw.get("ca") else None
    try:
        ca_pem = ca_path.read_bytes() if ca_path else None
    except OSError as exc:
        raise PartnerError(f"ca: cannot read {ca_path}: {exc.strerror}") from None
    url = str(raw.get("url", ""))
    endpoints = endpoints_for(url, raw.get("endpoints", {}))
    if not endpoints:
        raise PartnerError("url or endpoints: at least one endpoint is required")
    return Partner(
        home_community_id=str(raw["home_community_id"]),
        name=str(raw.get("name", "")),
        endpoints=endpoints,
        ca_pem=ca_pem,
        timeout_seconds=float(raw.get("timeout_seconds", DEFAULT_TIMEOUT_S)),
        max_documents_per_retrieve=int(
            raw.get("max_documents_per_retrieve", DEFAULT_MAX_DOCUMENTS)
        ),
        quirks=Quirks.from_mapping(raw.get("quirks", {})),
        base_url=url,
        source="config",
        ca_path=ca_path,
        signing_certificates=(
            (base / raw["signing_certificates"]).resolve()
            if raw.get("signing_certificates")
            else None
        ),
    )
