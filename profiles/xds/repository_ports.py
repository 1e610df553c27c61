"""The XDS.b Document Repository and XDR Document Recipient as ITI-41/ITI-43 see them
(``ctx.ports.repository``; ``gateway.repository.store.SqlRepository`` implements it,
tests use in-memory fakes).

The order that keeps a failure harmless (DESIGN, Storage): ``store`` writes a
document's bytes to the blob store first (an MTOM attachment's spooled file is
moved in, not copied); nothing points at them yet, so a failure from here on
leaves at most an orphan blob that the sweep removes. ``register`` then makes the
documents retrievable and registers their metadata all or nothing: with a local
registry in one database transaction, with a remote one (ITI-42 over SOAP) by
committing the documents, registering, and taking the documents back out if the
registry refuses, so metadata never names a document that is not there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from profiles.transaction import Attachment
from profiles.xds.metadata import Submission


@dataclass(frozen=True)
class StoredBlob:
    """A document's bytes in the blob store, as the repository measured them."""

    sha1: str  # lower-case hex
    size: int


@dataclass(frozen=True)
class StoredDocument:
    """One document the repository holds (or is about to): what ITI-43 answers with."""

    unique_id: str
    sha1: str
    size: int
    mime_type: str
    repository_unique_id: str


class DocumentRepository(Protocol):
    """What ITI-41, ITI-43 and XDR need of the repository."""

    @property
    def repository_unique_id(self) -> str:
        """This repository's OID: set on every stored DocumentEntry, checked by ITI-43."""
        ...

    def store(self, content: bytes | Attachment) -> StoredBlob:
        """Put a document's bytes in the blob store; not retrievable until ``register``."""
        ...

    def register(
        self,
        submission: Submission,
        documents: Sequence[StoredDocument],
        *,
        time: str,
        audit: Any = None,
    ) -> None:
        """Make ``documents`` retrievable and register ``submission`` (its DocumentEntries
        carry hash, size and repositoryUniqueId), all or nothing. ``time`` is the DTM
        the registry writes as lastUpdateTime; ``audit`` the request's AuditSink, bound
        to the database transaction so its records commit with the data. Raises the
        registry's refusal as a GatewayError."""
        ...

    def deliver(
        self,
        submission: Submission,
        documents: Sequence[StoredDocument],
        *,
        time: str,
        audit: Any = None,
    ) -> None:
        """XDR: ``register``, or (configured) hand the submission to another system."""
        ...

    def find(self, unique_ids: Sequence[str]) -> Mapping[str, StoredDocument]:
        """The documents held under these uniqueIds (absent ones are left out)."""
        ...

    def chunks(self, document: StoredDocument) -> Iterator[bytes]:
        """The document's bytes, read lazily from the blob store."""
        ...


class RegistryClient(Protocol):
    """A remote registry reached by ITI-42 over SOAP (``gateway/client.py``)."""

    def register(self, submission: Submission) -> None:
        """Send Register Document Set-b; raise the registry's errors as a GatewayError
        (XDSRegistryError when it cannot be reached or answers nonsense)."""
        ...
