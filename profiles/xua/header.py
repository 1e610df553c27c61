"""Verify the WS-Security header of an inbound request (IHE XUA ITI-40, eHealth Exchange).

    verify_security_header(security, trust=, policy=, clock=, replay_cache=,
                           tls_client_cert=, partner_certs=, partner_home_community_id=)
        -> Principal, or raises SecurityRefused (a SOAP Sender fault)
    check_security_header(same, without replay_cache) -> Checked(principal, replay_keys):
        the replay keys left for the caller to consume (``policy.py``)

The checks themselves, their order and subcodes: ``profiles.xua.verify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from cryptography import x509
from lxml import etree

from profiles.ports import Clock
from profiles.xua.assertion import Principal
from profiles.xua.faults import SecurityRefused, WsseFault, refuse
from profiles.xua.keys import TrustAnchors
from profiles.xua.policy import ReplayCache, ReplayKey, XuaPolicy, record_replay_keys
from profiles.xua.verify import Verification


def verify_security_header(
    security: etree._Element,
    *,
    trust: TrustAnchors,
    policy: XuaPolicy,
    clock: Clock,
    replay_cache: ReplayCache,
    tls_client_cert: x509.Certificate | bytes | None = None,
    partner_certs: Sequence[x509.Certificate] = (),
    partner_home_community_id: str | None = None,
) -> Principal:
    """Verify one parsed ``wsse:Security`` header element and return who is asking.

    ``tls_client_cert`` is the peer's verified TLS certificate (object or DER bytes, as
    ``getpeercert(binary_form=True)`` gives it); ``partner_certs`` the
    signing certificates registered for that same partner (trusted as pinned). The
    holder-of-key key must be one of their keys. ``partner_home_community_id``, when
    given, must equal the assertion's homeCommunityId. Port errors (clock, replay
    cache) propagate unchanged: they are the gateway's failures, not the peer's.
    """
    checked = check_security_header(
        security, trust=trust, policy=policy, clock=clock, tls_client_cert=tls_client_cert,
        partner_certs=partner_certs, partner_home_community_id=partner_home_community_id)
    record_replay_keys(replay_cache, checked.replay_keys)
    return checked.principal


@dataclass(frozen=True)
class Checked:
    """A verified header whose replay keys are not consumed yet."""

    principal: Principal
    replay_keys: tuple[ReplayKey, ...]


def check_security_header(
    security: etree._Element,
    *,
    trust: TrustAnchors,
    policy: XuaPolicy,
    clock: Clock,
    tls_client_cert: x509.Certificate | bytes | None = None,
    partner_certs: Sequence[x509.Certificate] = (),
    partner_home_community_id: str | None = None,
) -> Checked:
    """``verify_security_header`` without the replay cache: the keys come back
    unconsumed. The caller must consume them atomically before it answers, and answer a
    key found taken with ``policy.replayed(key)`` (the gateway does it in the commit of
    the request's audit record: ``gateway/audit/group.py``); until then a replay is not
    told from the original, so only a request whose handler changes nothing may wait."""
    now = clock.now()
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    if isinstance(tls_client_cert, bytes):  # getpeercert(binary_form=True) gives DER
        tls_client_cert = x509.load_der_x509_certificate(tls_client_cert)
    ctx = Verification(now, trust, policy, tls_client_cert, tuple(partner_certs),
                       partner_home_community_id)
    try:
        principal, keys = ctx.verify(security)
    except SecurityRefused:
        raise
    except Exception as exc:  # malformed input must fail closed as the peer's fault
        raise refuse(WsseFault.INVALID_SECURITY, f"{type(exc).__name__}: {exc}") from exc
    return Checked(principal, tuple(ReplayKey(key, expires_at) for key, expires_at in keys))
