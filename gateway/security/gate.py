"""The XUA gate: ``handle_soap`` calls it after WS-Addressing routing, before any handler.

    gate(route, envelope, req, transaction=, audit=) -> Principal | None,
        or raises SecurityRefused

Partner-facing routes (roles in ``PARTNER_ROLES``: /xca/*, /xcpd, /xdr) require a
verified assertion; local-actor routes (/xds/*, /ig/*, /pix, /diagnostics) accept
mutual TLS alone and verify an assertion when one is sent. A Security header that
is present is always verified, on every route: SOAP says a mustUnderstand header
we accept is one we processed.

The TLS client certificate picks the partner (its quirks policy, its pinned keys, its
homeCommunityId, which the assertion must carry). When several partners share the
CA that issued the certificate, the homeCommunityId the assertion *claims* picks
among them; the verifier then checks that claim in the signed assertion, so the
unverified read only chooses which partner's rules apply, among those the
certificate already allows.

Replay tokens are consumed here, before the handler, unless the route lists the
transaction as read-only (``Route.read_only``: queries, retrieves) and the request
has an audit to carry them: then the gate hands them to the request's audit
(``RequestAudit.defer_replay``), whose commit inserts them with the record before the
answer may leave; a replay is refused there with this gate's refusal (same fault, log
line and Security Alert), its answer never sent (``gateway/security/replay.py``).

Partners come from gateway.toml (loaded once per worker) and from the database
(``ihe-gateway partners add``; ``registered`` returns them, re-read every few
seconds): a partner added or removed with the CLI is known to, or forgotten by,
the identity check without a restart. Its CAs are XUA trust anchors as a
gateway.toml partner's are.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.dispatch import Route
from gateway.security.refusals import NoRecord, Refusal, RefusalRecorder, log_refusal
from gateway.security.replay import PendingTokens, SqlReplayCache
from gateway.security.settings import (
    PARTNER_ROLES,
    PartnerDirectory,
    PartnerQuirks,
    PartnerTrust,
    TrustMaterial,
    XuaSettings,
    is_ca,
)
from gateway.soap.envelope import Envelope
from profiles.oid import bare_oid
from profiles.ports import Clock
from profiles.xua import (
    Principal,
    ReplayCache,
    SecurityRefused,
    TrustAnchors,
    WsseFault,
    XuaPolicy,
    check_security_header,
    refuse,
    replayed,
    security_header,
    verify_security_header,
)
from profiles.xua.assertion import HOME_COMMUNITY_ID, SAML_NS

log = logging.getLogger("gateway.security")

_CLAIMED_HCID = etree.XPath(
    "saml2:Assertion/saml2:AttributeStatement/saml2:Attribute[@Name=$name]/saml2:AttributeValue",
    namespaces={"saml2": SAML_NS},
)


class XuaGate:
    """Verifies WS-Security headers for one gateway process (a ``SecurityGate``)."""

    def __init__(
        self,
        *,
        settings: XuaSettings,
        trust: TrustMaterial,
        replay_cache: ReplayCache,
        clock: Clock,
        record: RefusalRecorder | None = None,
        registered: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.trust = trust.anchors
        self.directory = PartnerDirectory(trust.partners)
        self.registered = _Registered(registered, settings, trust) if registered else None
        self.default_policy: XuaPolicy = settings.policy()
        self.replay_cache = replay_cache
        self.clock = clock
        self.record = record or NoRecord()
        self._certs = _DerCache()

    def required(self, route: Route) -> bool:
        return route.role in PARTNER_ROLES and self.settings.required_on_partner_endpoints

    def __call__(
        self, route: Route, envelope: Envelope, req: Any, *, transaction: Any = None,
        audit: Any = None,
    ) -> Principal | None:
        """``transaction`` (the routed ``Transaction``) and ``audit`` (the request's
        ``RequestAudit``) let a read-only transaction's replay tokens wait for the
        commit of its audit record; without them the tokens are consumed here."""
        partner: PartnerTrust | None = None
        peer: x509.Certificate | None = None
        try:
            security = security_header(envelope.headers, required=self.required(route))
            if security is None:
                return None
            peer = self._peer_certificate(req)
            directory, anchors = (
                self.registered.current() if self.registered else (None, self.trust))
            partner = self._partner(route, peer, security, directory)
            policy = partner.policy if partner else self.default_policy
            checks = dict(
                trust=anchors,
                policy=policy,
                clock=self.clock,
                tls_client_cert=peer,
                partner_certs=partner.certificates if partner else (),
                partner_home_community_id=partner.home_community_id if partner else None,
            )
            cache = self._deferring_cache(route, transaction, audit)
            if cache is None:
                return verify_security_header(
                    security, replay_cache=self.replay_cache, **checks)
            checked = check_security_header(security, **checks)
            if checked.replay_keys:
                cache.purge_if_due()
                audit.defer_replay(PendingTokens(
                    cache, checked.replay_keys,
                    lambda key: self._refused(replayed(key), route, req, peer, partner)))
            return checked.principal
        except SecurityRefused as refused:
            raise self._refused(refused, route, req, peer, partner) from None

    def _deferring_cache(
        self, route: Route, transaction: Any, audit: Any
    ) -> SqlReplayCache | None:
        """The cache whose tokens the request's audit commit will insert (see the module
        doc), or None: the gate consumes them itself."""
        cache = self.replay_cache
        if (not isinstance(cache, SqlReplayCache) or transaction is None
                or route.writes(transaction) or not hasattr(audit, "defer_replay")):
            return None
        return cache

    def _refused(
        self, refused: SecurityRefused, route: Route, req: Any, peer: x509.Certificate | None,
        partner: PartnerTrust | None,
    ) -> SecurityRefused:
        """Log and record a refusal; return it (audited) for the pipeline to answer."""
        refusal = Refusal.of(
            refused,
            request_id=getattr(req, "request_id", ""),
            path=route.path,
            peer_subject=getattr(req, "peer_subject", None) or _subject(peer),
            partner=partner.name if partner else None,
        )
        log_refusal(refusal)
        self.record(refusal)
        refused.audited = True  # the pipeline must not write a second alert
        return refused

    def _peer_certificate(self, req: Any) -> x509.Certificate | None:
        der = getattr(req, "peer_certificate", None)
        if not der:
            return None
        try:
            return self._certs.get(der)
        except ValueError:  # gunicorn verified it; unreadable here means a broken socket
            raise refuse(
                WsseFault.FAILED_AUTHENTICATION, "TLS client certificate unreadable"
            ) from None

    def _partner(
        self, route: Route, peer: x509.Certificate | None, security: etree._Element,
        registered: PartnerDirectory | None = None,
    ) -> PartnerTrust | None:
        candidates = self.directory.candidates(peer)
        if registered is not None:
            candidates += registered.candidates(peer)
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            claimed = _claimed_community(security)
            chosen = [p for p in candidates if bare_oid(p.home_community_id) == claimed]
            if len(chosen) == 1:
                return chosen[0]
            raise refuse(
                WsseFault.FAILED_AUTHENTICATION,
                f"TLS client certificate fits {len(candidates)} partners; the assertion's "
                f"homeCommunityId {claimed!r} picks {len(chosen)}",
            )
        if route.role in PARTNER_ROLES and self.settings.require_registered_partner:
            raise refuse(WsseFault.FAILED_AUTHENTICATION, "TLS client certificate is no partner's")
        return None


class _Registered:
    """The CLI-registered partners as the gate sees them, rebuilt when they change.

    ``source()`` is ``gateway.partners.PartnerDirectory.registered``: the same tuple
    until the directory re-reads the database, so most requests cost one identity
    check. When the database cannot be read, the last known partners stay in force.
    """

    def __init__(self, source: Callable[[], Sequence[Any]], settings: XuaSettings,
                 trust: TrustMaterial) -> None:
        self.source, self.settings, self.static = source, settings, trust
        self._configured = {bare_oid(p.home_community_id) for p in trust.partners}
        self._seen: Sequence[Any] | None = None
        self._key: tuple = ()
        self._current = (PartnerDirectory(), trust.anchors)
        self._failing = False
        self._lock = threading.Lock()

    def current(self) -> tuple[PartnerDirectory, TrustAnchors]:
        try:
            partners = self.source()
            self._failing = False
        except Exception:  # noqa: BLE001 - the database is down: keep the last known
            if not self._failing:
                log.warning("registered partners unreadable; the last known stay in force",
                            exc_info=True)
            self._failing = True
            return self._current
        with self._lock:
            if partners is self._seen:
                return self._current
            key = tuple((p.home_community_id, p.name, p.ca_pem, PartnerQuirks.of(p))
                        for p in partners if bare_oid(p.home_community_id) not in self._configured)
            if key != self._key:
                self._current = self._build(key)
                self._key = key
            self._seen = partners
            return self._current

    def _build(self, key: tuple) -> tuple[PartnerDirectory, TrustAnchors]:
        trusted, roots = [], list(self.static.anchors.roots)
        for home, name, ca_pem, quirks in key:
            try:
                certs = x509.load_pem_x509_certificates(ca_pem or b"")
            except ValueError:
                log.warning("partner %s: its CA is not PEM; not recognised", home)
                continue
            cas = tuple(c for c in certs if is_ca(c))
            roots += [c for c in cas if all(c != r for r in roots)]
            trusted.append(PartnerTrust(
                name=name or home, home_community_id=home, authorities=cas,
                certificates=tuple(c for c in certs if not is_ca(c)),
                policy=self.settings.policy(quirks)))
        anchors = self.static.anchors
        return PartnerDirectory(tuple(trusted)), TrustAnchors(
            roots=tuple(roots), intermediates=anchors.intermediates, pinned=anchors.pinned)


def _claimed_community(security: etree._Element) -> str:
    values = _CLAIMED_HCID(security, name=HOME_COMMUNITY_ID)
    return bare_oid(values[0].text or "") if len(values) == 1 else ""


def _subject(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return None


class _DerCache:
    """Parsed TLS client certificates by their DER bytes (keep-alive peers repeat them).

    Bounded and thread-safe; a DER that does not parse raises ValueError.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, der: bytes) -> x509.Certificate:
        with self._lock:
            cert = self._items.get(der)
            if cert is not None:
                self._items.move_to_end(der)
                return cert
        cert = x509.load_der_x509_certificate(der)
        with self._lock:
            self._items[der] = cert
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return cert
