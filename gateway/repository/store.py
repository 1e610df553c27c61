"""``SqlRepository``: the XDS.b Document Repository / XDR Document Recipient port
(``profiles.xds.repository_ports.DocumentRepository``) on the blob store and the
database.

Storing a document moves its bytes into ``FileBlobStore`` (an MTOM attachment's
spooled file is renamed in: no second copy). Registering commits, with a local
registry, the ``blobs`` rows, the ``repository_documents`` rows and the registry's
metadata in ONE database transaction (the registry transaction's own session), so
a document is retrievable exactly when it is registered, and a refusal or a crash
leaves only orphan blob files for the sweep. With a remote registry (ITI-42 over
SOAP, ``RegistryClient``) the documents commit first, then the registry is asked,
and a refusal deletes the rows again: metadata never names a missing document,
and a crash in between leaves a document nobody's metadata points at, never
metadata without its document.

Configuration: the repositoryUniqueId defaults to the home community OID + ".1"
(write ``[repository] unique_id`` to choose another); ``[xdr] handoff_dir`` makes
the XDR recipient write each submission to that folder (``handoff``) instead of
registering it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.audit.binding import bound_to
from gateway.repository.handoff import write_submission
from gateway.repository.models import RepositoryDocument
from gateway.store.blobindex import BlobSizeConflict, record_blob
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.models import Blob
from profiles.errors import (
    GatewayError,
    XDSNonIdenticalHash,
    XDSRepositoryError,
    XDSRepositoryMetadataError,
)
from profiles.transaction import Attachment
from profiles.xds import iti42
from profiles.xds.metadata import Submission
from profiles.xds.repository_ports import RegistryClient, StoredBlob, StoredDocument

log = logging.getLogger("gateway.repository")

CHUNK = 64 * 1024
_IN_CHUNK = 500  # bound parameters per IN (...)


def default_repository_unique_id(community_oid: str) -> str:
    return f"{community_oid}.1"


class SqlRepository:
    """The repository port; ``registry`` is the local registry port (``SqlRegistry``),
    ``registry_client`` a remote one (it wins when both are given)."""

    def __init__(
        self,
        database: Database,
        blobs: FileBlobStore,
        *,
        repository_unique_id: str,
        registry: Any = None,
        registry_client: RegistryClient | None = None,
        handoff_dir: Path | None = None,
    ) -> None:
        self.database, self.blobs = database, blobs
        self.repository_unique_id = repository_unique_id
        self.registry, self.registry_client = registry, registry_client
        self.handoff_dir = Path(handoff_dir) if handoff_dir is not None else None

    @classmethod
    def from_config(
        cls,
        config: Any,
        database: Database,
        blobs: FileBlobStore,
        *,
        registry: Any = None,
        registry_client: RegistryClient | None = None,
    ) -> SqlRepository:
        """Settings from ``[repository]`` / ``[xdr]`` when the configuration has them."""
        repo = getattr(config, "repository", None)
        xdr = getattr(config, "xdr", None)
        unique_id = getattr(repo, "unique_id", None) or default_repository_unique_id(
            config.community.oid
        )
        return cls(
            database,
            blobs,
            repository_unique_id=unique_id,
            registry=registry,
            registry_client=registry_client,
            handoff_dir=getattr(xdr, "handoff_dir", None),
        )

    # -- storing bytes ---------------------------------------------------------

    def store(self, content: bytes | Attachment) -> StoredBlob:
        if isinstance(content, bytes | bytearray | memoryview):
            sha1, size = self.blobs.put(BytesIO(bytes(content)))
            return StoredBlob(sha1, size)
        path = getattr(content, "path", None)
        if path and Path(path).exists():
            sha1, size = self.blobs.adopt(Path(path), content.sha1, content.size)
            return StoredBlob(sha1, size)
        if path and self.blobs.exists(content.sha1):  # moved in already (two includes of one part)
            return StoredBlob(content.sha1.lower(), content.size)
        with content.open() as f:  # no spooled file to move: copy, and check the hash
            sha1, size = self.blobs.put(f)
        if sha1 != content.sha1.lower() or size != content.size:
            raise XDSRepositoryError("an attachment changed while it was stored")
        return StoredBlob(sha1, size)

    # -- registering -----------------------------------------------------------

    def register(
        self,
        submission: Submission,
        documents: Sequence[StoredDocument],
        *,
        time: str,
        audit: Any = None,
    ) -> None:
        if self.registry_client is not None:
            self._register_remote(submission, documents, audit)
        elif self.registry is not None:
            joined = _WithDocuments(self.registry, self, documents, audit)
            iti42.register(joined, iti42.RegisterRequest(submission), time)
        else:
            raise XDSRepositoryError("this repository has no registry to register with")

    def deliver(
        self,
        submission: Submission,
        documents: Sequence[StoredDocument],
        *,
        time: str,
        audit: Any = None,
    ) -> None:
        if self.handoff_dir is None:
            limited = [
                o.entry_uuid
                for o in submission.registry_objects()
                if getattr(o, "limited_metadata", False)
            ]
            if limited:  # an XDS registry takes full metadata only (ITI TF-3 4.2.3)
                raise GatewayError.collect(
                    [
                        XDSRepositoryMetadataError(
                            f"{oid} carries limited metadata, which this recipient cannot "
                            "register (it accepts limited metadata only with a hand-off folder)",
                            location=oid,
                        )
                        for oid in limited
                    ]
                )
            self.register(submission, documents, time=time, audit=audit)
            return
        # The blobs stay behind without a row: the sweep removes them later.
        where = write_submission(self.handoff_dir, self.blobs, submission, documents, time=time)
        log.info("XDR submission handed off", extra={"handoff": where.name})

    def _register_remote(
        self, submission: Submission, documents: Sequence[StoredDocument], audit: Any
    ) -> None:
        with self.database.session() as session, bound_to(audit, session):
            created = self.record(session, documents)
        try:
            self.registry_client.register(submission)
        except BaseException:
            self.forget(created)
            raise

    def record(self, session: Session, documents: Sequence[StoredDocument]) -> list[str]:
        """Insert the blob and document rows in ``session``; return the uniqueIds that
        are new (an identical document stored again under its uniqueId is kept)."""
        insert = (
            postgresql.insert
            if session.get_bind().dialect.name == "postgresql"
            else (sqlite.insert)
        )
        created: list[str] = []
        for doc in documents:
            try:
                record_blob(session, doc.sha1, doc.size)
            except BlobSizeConflict as exc:
                raise XDSRepositoryError(str(exc), location=doc.unique_id) from None
            result = session.execute(
                insert(RepositoryDocument)
                .values(
                    unique_id=doc.unique_id,
                    sha1=doc.sha1,
                    size=doc.size,
                    mime_type=doc.mime_type,
                    repository_unique_id=doc.repository_unique_id,
                )
                .on_conflict_do_nothing(index_elements=[RepositoryDocument.unique_id])
                .returning(RepositoryDocument.unique_id)
            )
            if result.first() is not None:  # rowcount is not reliable here (psycopg: -1)
                created.append(doc.unique_id)
                continue
            held = session.get(RepositoryDocument, doc.unique_id)
            if held is not None and held.sha1 != doc.sha1:
                raise XDSNonIdenticalHash(
                    f"document {doc.unique_id} is held with hash {held.sha1}, not {doc.sha1}",
                    location=doc.unique_id,
                )
        return created

    def forget(self, unique_ids: Sequence[str]) -> None:
        """Take documents back out; a blob no document holds any more loses its row too,
        so the sweep can remove its file."""
        if not unique_ids:
            return
        with self.database.session() as session:
            for chunk in _chunks(list(unique_ids)):
                held = RepositoryDocument.unique_id.in_(chunk)
                sha1s = list(session.scalars(sa.select(RepositoryDocument.sha1).where(held)))
                session.execute(sa.delete(RepositoryDocument).where(held))
                still = sa.select(RepositoryDocument.sha1).where(
                    RepositoryDocument.sha1 == Blob.sha1
                )
                try:
                    with session.begin_nested():  # another table may hold the blob: keep it then
                        session.execute(
                            sa.delete(Blob).where(Blob.sha1.in_(sha1s), ~sa.exists(still))
                        )
                except sa.exc.IntegrityError:
                    log.info("blobs of forgotten documents are still referenced elsewhere")

    # -- retrieving ------------------------------------------------------------

    def find(self, unique_ids: Sequence[str]) -> Mapping[str, StoredDocument]:
        found: dict[str, StoredDocument] = {}
        with self.database.session() as session:
            for chunk in _chunks(list(unique_ids)):
                rows = session.scalars(
                    sa.select(RepositoryDocument).where(RepositoryDocument.unique_id.in_(chunk))
                )
                for row in rows:
                    if not self.blobs.exists(row.sha1):
                        log.error("document %s: blob %s is missing", row.unique_id, row.sha1)
                        continue
                    found[row.unique_id] = StoredDocument(
                        row.unique_id, row.sha1, row.size, row.mime_type, row.repository_unique_id
                    )
        return found

    def chunks(self, document: StoredDocument) -> Iterator[bytes]:
        with self.blobs.open(document.sha1) as f:
            while chunk := f.read(CHUNK):
                yield chunk


class _WithDocuments:
    """The local registry, with the repository's rows joining each registration's
    database transaction (and the request's audit records with them)."""

    def __init__(
        self, registry: Any, repo: SqlRepository, documents: Sequence[StoredDocument], audit: Any
    ) -> None:
        self.registry, self.repo, self.documents, self.audit = registry, repo, documents, audit

    @contextmanager
    def transaction(self, *, lock=()) -> Iterator[Any]:
        created: list[str] = []
        try:
            with self.registry.transaction(lock=lock) as tx:
                yield _JoinedTransaction(tx, self, created)
        except BaseException:
            self.repo.forget(created)  # only set when the rows had to commit on their own
            raise

    def run_query(self, query):
        return self.registry.run_query(query)


class _JoinedTransaction:
    def __init__(self, tx: Any, outer: _WithDocuments, created: list[str]) -> None:
        self._tx, self._outer, self._created = tx, outer, created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def save(self, registration) -> None:
        outer = self._outer
        session = getattr(self._tx, "session", None)
        if isinstance(session, Session):
            with bound_to(outer.audit, session):
                outer.repo.record(session, outer.documents)
        else:  # a registry with its own storage: documents first, taken back on failure
            with outer.repo.database.session() as own, bound_to(outer.audit, own):
                self._created += outer.repo.record(own, outer.documents)
        self._tx.save(registration)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]
