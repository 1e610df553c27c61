"""Plugging patient discovery into a running gateway (``ports.xcpd``) and into XCA.

    wire_discovery(config, ports)   # after ports.xca is built (gateway.ports)

``ports.xcpd`` is a ``DiscoveryFanOut`` beside the XCA fan-out (same client, XUA,
directory and pool). With ``[xcpd] discovery`` on (the default), the XCA fan-out's
``discover_first`` is a ``DiscoverFirst``: an ITI-18 for one of our patients whom
no partner is correlated with first runs ITI-55 to every partner, speaking as the
gateway itself, stores the verified matches, then queries the communities found.
A patient for whom discovery found nobody is not asked about again for
``retry_seconds`` (per process), so a stream of queries does not become a stream
of fan-outs. Its deadline is what the XCA fan-out's deadline leaves of the request's
time (``hook_deadline``), so discovery and query together end before the worker
timeout. The outbound ITI-55 calls of that path have no request audit sink,
so their initiator-side records are written here, one per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from gateway.audit.hook import ANONYMOUS, Auditor
from gateway.xcpd.fanout import DiscoveryFanOut
from profiles.atna.events import Endpoint
from profiles.atna.facts import OUTCOMES, OutboundCall, outbound_record
from profiles.atna.message import EventOutcome
from profiles.hl7v3.datatypes import II
from profiles.pix.ports import Correlation, IndexBusy, PatientIndex, key_of
from profiles.xcpd.discovery import DiscoveryRequest, discover, parameters_of
from profiles.xcpd.matching import MatchConfig
from profiles.xcpd.verify import Discovered

log = logging.getLogger("gateway.xcpd")
RETRY_SECONDS = 300.0


class OutboundAudit:
    """An audit sink for discovery outside a SOAP request (ITI-18 hook, CLI): collects the
    ITI-55 calls noted, then writes their initiator-side records."""

    def __init__(self, auditor: Auditor | None) -> None:
        self.auditor = auditor
        self.calls: list[OutboundCall] = []

    def note(self, *, outbound: OutboundCall | None = None, **_facts: Any) -> None:
        if outbound is not None:
            self.calls.append(outbound)

    def write(self, fallback_id: str) -> None:
        if self.auditor is None:
            return
        node = self.auditor.node
        us = Endpoint(ANONYMOUS, host=node.host, process_id=node.process_id)
        for call in self.calls:
            occasion = self.auditor.occasion(
                OUTCOMES.get(call.outcome, EventOutcome.SERIOUS_FAILURE), call.reason)
            self.auditor.node_event(outbound_record(call, occasion, initiator=us, human=None,
                                                    fallback_id=fallback_id))
        self.calls.clear()


def run_discovery(request: DiscoveryRequest, *, gateway: DiscoveryFanOut, index: PatientIndex,
                  home: str, auditor: Auditor | None, config: MatchConfig | None = None,
                  fallback_id: str = "discovery") -> Discovered:
    """Discovery with its outbound audit records written (both happen even on failure)."""
    audit = OutboundAudit(auditor)
    try:
        return discover(request, gateway=gateway, index=index, home=home, config=config,
                        audit=audit)
    finally:
        audit.write(fallback_id)


class DiscoverFirst:
    """``FanOut.discover_first``: our patient's correlations after discovering them."""

    def __init__(self, gateway: DiscoveryFanOut, index: PatientIndex, home: str,
                 auditor: Auditor | None, *, matching: MatchConfig | None = None,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self.gateway, self.index, self.home, self.auditor = gateway, index, home, auditor
        self.matching = matching
        self.retry_seconds = retry_seconds
        self._tried: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _recently_tried(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            for k in [k for k, t in self._tried.items() if now - t >= self.retry_seconds]:
                del self._tried[k]
            return key in self._tried

    def __call__(self, ours: II) -> list[Correlation]:
        key = key_of(ours)
        if not all(key) or self._recently_tried(key):
            return []
        try:
            record = self.index.get(ours)
            if record is None:
                return []  # not our patient: nobody to describe to partners
            found = run_discovery(
                DiscoveryRequest(parameters_of(record), record.id.root), gateway=self.gateway,
                index=self.index, home=self.home, auditor=self.auditor, config=self.matching,
                fallback_id=f"discovery-{record.id.root}")
            correlations = self.index.correlations(ours) if found.trusted else []
        except IndexBusy:
            log.warning("discovery before query skipped: the patient index is busy")
            return []
        if not correlations:
            with self._lock:
                self._tried[key] = time.monotonic()
        log.info("discovery before query", extra={
            "communities": len(found.communities), "correlated": len(correlations)})
        return correlations


def wire_discovery(config: Any, ports: Any) -> None:
    """Set ``ports.xcpd`` and, with ``[xcpd] discovery`` on, the XCA hook."""
    if getattr(ports, "xca", None) is None:
        return
    settings = config.xcpd
    ports.xcpd = DiscoveryFanOut.beside(ports.xca, deadline_seconds=settings.deadline_seconds)
    if settings.discovery and ports.patients is not None:
        database = getattr(ports, "database", None)
        auditor = Auditor.from_config(config, database) if database is not None else None
        first = DiscoveryFanOut.beside(ports.xca, deadline_seconds=hook_deadline(
            settings.deadline_seconds, config.limits.request_timeout_seconds,
            ports.xca.deadline_seconds))
        ports.xca.discover_first = DiscoverFirst(
            first, ports.patients, config.community.home_community_id, auditor,
            matching=matching_of(config))


def matching_of(config: Any) -> MatchConfig | None:
    """The configured matching (``[matching]``), the one ``/xcpd`` and ``/ig/xcpd`` use."""
    found = getattr(config, "matching", None)
    return found if isinstance(found, MatchConfig) else None


def hook_deadline(discovery: float, request_timeout: float, query_deadline: float) -> float:
    """Discovery before an ITI-18 shares the request's time with the XCA fan-out after it:
    it gets what the fan-out's deadline leaves (90 % of it), at most ``discovery``."""
    return max(1.0, min(discovery, 0.9 * (request_timeout - query_deadline)))


@contextmanager
def standalone(config: Any, database: Any, index: PatientIndex) -> Iterator[DiscoveryFanOut]:
    """A discovery fan-out outside the server (``patients discover``): our TLS client
    certificate and XUA signing key from the configuration, the partner directory."""
    from gateway.ports import SystemClock
    from gateway.xca.wiring import build_fanout

    fanout = build_fanout(config, SimpleNamespace(clock=SystemClock(), patients=index,
                                                  database=database))
    try:
        yield DiscoveryFanOut.beside(fanout, deadline_seconds=config.xcpd.deadline_seconds)
    finally:
        close = getattr(fanout.client.transport, "close", None)
        if close is not None:
            close()
