"""What patient discovery as initiator needs from the running gateway (``ctx.ports.xcpd``).

The sans-IO side (``profiles.xcpd.discovery``) plans one ITI-55 per partner,
verifies the answers and stores the trusted ones; ``DiscoveryGateway``
(``gateway.xcpd.fanout``) knows the partner directory and runs the calls in
parallel under one deadline, with the XCA fan-out's machinery. A call that
fails comes back as a ``DiscoveryFailure`` value, never as an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from profiles.xcpd.models import PatientDiscoveryQuery, PatientDiscoveryResponse


@dataclass(frozen=True)
class DiscoveryCall:
    """One ITI-55 to send: the partner (``urn:oid:`` homeCommunityId) and the message."""

    home_community_id: str
    query: PatientDiscoveryQuery
    principal: Any = None  # the requester's verified XUA Principal; None: the gateway itself


@dataclass(frozen=True)
class DiscoveryAnswer:
    home_community_id: str
    response: PatientDiscoveryResponse
    elapsed: float = 0.0  # seconds, request sent to answer read


@dataclass(frozen=True)
class DiscoveryFailure:
    """A partner gave no usable answer; ``reason`` is ours, safe to show the requester."""

    home_community_id: str
    reason: str
    elapsed: float = 0.0


class Responder(Protocol):
    home_community_id: str  # urn:oid:...
    name: str

    def endpoint(self, transaction: str) -> str | None: ...


class DiscoveryGateway(Protocol):
    def responders(self, wanted: Sequence[str] | None = None
                   ) -> tuple[list[Responder], list[str]]:
        """Partners with an ITI-55 endpoint (only the ``wanted`` homeCommunityIds when
        given), and the wanted ones that are not in the directory."""
        ...

    def discover(self, calls: Sequence[DiscoveryCall]
                 ) -> list[DiscoveryAnswer | DiscoveryFailure]:
        """Every call, in parallel, within the deadline; results in call order."""
        ...
