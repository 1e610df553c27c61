"""What the initiating gateway's transactions need from the running gateway.

The transactions (``ig_query``, ``ig_retrieve``) plan the calls and merge the
answers; ``InitiatingGateway`` (``ctx.ports.xca``; ``gateway.xca.initiating``)
runs the calls in parallel under one deadline and knows the partner directory, the
patient index and the local registry/repository. A call that fails comes back as a
``Failure`` value, never as an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from profiles.xca.query import QueryResult
from profiles.xca.retrieve import DocumentRequest, RetrieveResult
from profiles.xds.metadata import ListMember
from profiles.xds.storedquery import StoredQuery


class PartnerInfo(Protocol):
    home_community_id: str  # urn:oid:...
    max_documents_per_retrieve: int

    def outbound_hcid(self) -> str: ...


@dataclass(frozen=True)
class QueryCall:
    home_community_id: str
    query: StoredQuery  # already rewritten for this partner (its patient id, its home)
    principal: Any = None  # the consumer's verified XUA Principal, spoken for outbound


@dataclass(frozen=True)
class RetrieveCall:
    home_community_id: str
    documents: tuple[DocumentRequest, ...]
    principal: Any = None


@dataclass(frozen=True)
class Failure:
    """A community gave no usable answer; ``reason`` is safe to show the consumer."""

    home_community_id: str
    reason: str
    code: str = "XDSUnavailableCommunity"


@dataclass(frozen=True)
class QueryAnswer:
    home_community_id: str
    result: QueryResult


@dataclass
class RetrieveAnswer:
    home_community_id: str
    result: RetrieveResult
    closers: list = field(default_factory=list)  # release spooled documents once sent


class InitiatingGateway(Protocol):
    def partner(self, home_community_id: str) -> PartnerInfo | None: ...

    def correlated(self, patient_id: str) -> list[tuple[str, str]]:
        """(homeCommunityId, the partner's CX patient id) for our CX ``patient_id``."""
        ...

    def local_query(self, query: StoredQuery) -> Sequence[ListMember] | None:
        """The local registry's answer; None when this gateway has no registry role."""
        ...

    def local_retrieve(self, documents: Sequence[DocumentRequest]) -> RetrieveResult | None:
        """The local repository's answer; None when this gateway has no repository role."""
        ...

    def query(
        self, calls: Sequence[QueryCall], meanwhile: Callable[[], object] | None = None
    ) -> list[QueryAnswer | Failure]:
        """Every call, in parallel, within the fan-out deadline; results in call order.
        ``meanwhile`` runs in the calling thread once every request is on its way, while
        the partners think: work that needs no answer (the calls' audit facts)."""
        ...

    def retrieve(self, calls: Sequence[RetrieveCall]) -> list[RetrieveAnswer | Failure]: ...
