"""XUA in the running gateway: the gate ``handle_soap`` runs before any handler.

    build_security(config, database) -> XuaGate    (once per worker, in Runtime.start)

    settings.py   XuaSettings ([xua]), PartnerQuirks ([[partners]]), trust loading
    gate.py       XuaGate: which routes require an assertion, partner lookup, verify
    replay.py     SqlReplayCache: assertion IDs remembered in the database
    refusals.py   the log line and the ATNA Security Alert of each refusal

The checks themselves are in ``profiles/xua`` (sans-IO); this package supplies their
ports (clock, replay cache), the trust anchors and the per-partner policies.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.audit import Auditor
from gateway.ports import SystemClock
from gateway.security.gate import XuaGate
from gateway.security.refusals import AuditRefusals, Refusal, RefusalRecorder
from gateway.security.replay import ReplayToken, SqlReplayCache
from gateway.security.settings import (
    PARTNER_ROLES,
    PartnerQuirks,
    TrustMaterial,
    XuaSettings,
    load_trust,
    settings_of,
)
from gateway.store.db import Database
from profiles.atna.nodes import security_configuration_change
from profiles.ports import Clock

log = logging.getLogger("gateway.security")

XUA_OFF_WARNING = (
    "XUA IS OFF ON PARTNER ENDPOINTS (/xca/*, /xcpd, /xdr): "
    "[xua] required_on_partner_endpoints = false. Requests without a SAML assertion "
    "are served on mutual TLS alone. Development only: never with real partners or "
    "real patient data."
)


def build_security(
    config: Any,
    database: Database,
    *,
    settings: XuaSettings | None = None,
    clock: Clock | None = None,
    record: RefusalRecorder | None = None,
) -> XuaGate:
    """The gate for ``config``: trust anchors and partner policies loaded once.

    ``settings`` defaults to ``config.xua`` (or the strict defaults); ``record``
    defaults to an ATNA Security Alert per refusal through the audit queue. A
    trust store or partner file that cannot be read raises: the gateway must not
    start with less trust configured than the operator wrote.
    """
    settings = settings or settings_of(config)
    trust = load_trust(config, settings)
    if record is None:
        record = _audit_recorder(config, database)
    gate = XuaGate(
        settings=settings,
        trust=trust,
        replay_cache=SqlReplayCache(database, clock=clock),
        clock=clock or SystemClock(),
        record=record,
        registered=_registered_partners(config, database),
    )
    _announce(settings, trust, record)
    return gate


def _registered_partners(config: Any, database: Database):
    """Partners added with ``ihe-gateway partners add`` (the database), re-read every
    few seconds: the identity check knows them without a restart."""
    from gateway.partners.directory import PartnerDirectory

    return PartnerDirectory(list(getattr(config, "partners", ())), database).registered


def _audit_recorder(config: Any, database: Database) -> RefusalRecorder:
    return AuditRefusals(Auditor.from_config(config, database))


def _announce(settings: XuaSettings, trust: TrustMaterial, record: RefusalRecorder) -> None:
    anchors = trust.anchors
    log.info(
        "XUA: %d trust anchor(s), %d pinned signer(s), %d partner(s); assertions %s on "
        "partner endpoints, clock skew %ss",
        len(anchors.roots),
        len(anchors.pinned),
        len(trust.partners),
        "REQUIRED" if settings.required_on_partner_endpoints else "NOT required",
        settings.clock_skew_seconds,
    )
    if not anchors.roots and not anchors.pinned and not trust.partners:
        log.warning(
            "XUA: no trust anchors ([tls] trust_store, [[partners]] ca): "
            "every assertion will be refused"
        )
    if not settings.required_on_partner_endpoints:
        log.warning(XUA_OFF_WARNING)
        if isinstance(record, AuditRefusals):
            _audit_xua_off(record.auditor)


def _audit_xua_off(auditor: Auditor) -> None:
    auditor.node_event(
        security_configuration_change(
            auditor.occasion(),
            reporter=auditor.node,
            resource="gateway.toml#xua.required_on_partner_endpoints",
            description=XUA_OFF_WARNING,
        )
    )


__all__ = [
    "PARTNER_ROLES",
    "AuditRefusals",
    "PartnerQuirks",
    "Refusal",
    "RefusalRecorder",
    "ReplayToken",
    "SqlReplayCache",
    "XuaGate",
    "XuaSettings",
    "build_security",
]
