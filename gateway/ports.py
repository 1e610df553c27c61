"""The port bundle handed to transactions as ``ctx.ports``.

Each profile declares the small Protocols it needs in ``profiles/<profile>/ports.py``;
this is the one place that plugs the gateway's implementations into them. Tests pass
their own bundle (in-memory fakes) to ``create_app(config, ports=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.config import Config
from gateway.patients.index import SqlPatientIndex
from gateway.registry.store import SqlRegistry
from gateway.repository.store import SqlRepository
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Ports:
    config: Config
    database: Database
    blobs: FileBlobStore
    clock: Any
    # Filled by the profiles' adapters as they land (one line each in build_ports).
    patients: Any = None
    registry: Any = None
    repository: Any = None
    partners: Any = None
    audit: Any = None
    matching: Any = None  # XCPD's MatchConfig from [matching] (profiles.xcpd.matching)
    xca: Any = None  # the initiating gateway's fan-out (profiles.xca.ports.InitiatingGateway)
    xcpd: Any = None  # patient discovery as initiator (profiles.xcpd.ports.DiscoveryGateway)


def build_ports(config: Config, database: Database, blobs: FileBlobStore) -> Ports:
    ports = Ports(config=config, database=database, blobs=blobs, clock=SystemClock(),
                  matching=config.matching)
    # Adapters register here, one line each, e.g.:
    # ports.patients = SqlPatientIndex(database)
    ports.patients = SqlPatientIndex(database)
    ports.registry = SqlRegistry(
        database, patients=ports.patients, max_results=config.registry.max_results
    )
    remote = None
    if getattr(getattr(config, "repository", None), "registry_url", None):
        from gateway.registry_client import HttpRegistryClient

        remote = HttpRegistryClient.from_config(config)
    ports.repository = SqlRepository.from_config(config, database, blobs,
                                                 registry=ports.registry, registry_client=remote)
    if config.has_role("initiating_gateway"):
        from gateway.xca.wiring import build_fanout

        ports.xca = build_fanout(config, ports)
        from gateway.xcpd.wiring import wire_discovery

        wire_discovery(config, ports)  # ports.xcpd; XCPD before XCA when [xcpd] discovery
    return ports
