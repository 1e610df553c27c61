"""The registry as ITI-42 and ITI-18 see it (``ctx.ports.registry``).

A registration runs inside ``Registry.transaction()``: validation reads the
registry's state through the transaction (``RegistryState``), and ``save`` writes
the whole submission in the same database transaction, so a submission is stored
all or nothing and two concurrent submissions cannot both claim one uniqueId.
``gateway.registry.store.SqlRegistry`` implements these; tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from profiles.xds.metadata import ListMember, Submission
from profiles.xds.storedquery import StoredQuery
from profiles.xds.validate import RegistryState


@dataclass(frozen=True)
class Registration:
    """What ITI-42 decided to store: the submission with entryUUIDs, statuses and
    lastUpdateTimes set (and the Folder memberships a replacement inherits), the
    DocumentEntries it deprecates, and the registered Folders it changes."""

    submission: Submission
    deprecate: tuple[str, ...] = ()
    touched_folders: tuple[str, ...] = ()
    time: str = ""  # the DTM written as lastUpdateTime of touched Folders


class RegistryTransaction(RegistryState, Protocol):
    def folders_containing(self, document_uuid: str) -> Sequence[str]:
        """entryUUIDs of the Approved Folders that hold this DocumentEntry."""
        ...

    def addenda_and_transforms(self, document_uuid: str) -> Sequence[str]:
        """entryUUIDs of the Approved DocumentEntries that are APND or XFRM of this one;
        replacing a document deprecates them too (ITI CP 117)."""
        ...

    def save(self, registration: Registration) -> None:
        """Store the registration; nothing is visible until the transaction ends well."""
        ...


class Registry(Protocol):
    def transaction(
        self, *, lock: Iterable[str] = ()
    ) -> AbstractContextManager[RegistryTransaction]:
        """One atomic registration; ``lock`` names the uniqueIds it will claim. An
        exception leaving the block undoes everything."""
        ...

    def run_query(self, query: StoredQuery) -> list[ListMember]:
        """The query's result: models (LeafClass) or ObjectRefs, in registration order.

        Raises XDSTooManyResults past the registry's limit.
        """
        ...
