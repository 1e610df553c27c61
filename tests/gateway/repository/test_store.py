"""SqlRepository on a real database: what commits together, what a failure leaves
behind (only orphan blob files, for the sweep), and the remote-registry port."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.registry.models import DocumentEntryRow
from gateway.registry.store import SqlRegistry, SqlRegistryTransaction
from gateway.repository.models import RepositoryDocument
from gateway.repository.store import SqlRepository
from gateway.store import migrate
from gateway.store.blobindex import sweep_orphans
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.models import Blob
from profiles.errors import GatewayError, XDSRegistryError
from profiles.transaction import Attachment
from profiles.xds.iti41 import ProvideAndRegisterRequest, provide_and_register
from tests.gateway.registry.conftest import KnownPatients
from tests.profiles.xds.builders import document_entry, submission
from tests.profiles.xds.fake_registry import InMemoryRegistry

CONTENT = b"the document"
SHA1 = hashlib.sha1(CONTENT).hexdigest()
REPO_ID = "1.2.3.4.5.200"


@pytest.fixture
def db(database_url: str):
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def request():
    entry = document_entry(hash=None, size=None, repository_unique_id=None)
    return ProvideAndRegisterRequest(submission(document_entries=(entry,)), {"Document01": CONTENT})


def submit(repo: SqlRepository) -> None:
    provide_and_register(request(), repo, actor="repository", time="20260101000000")


def count(db: Database, model) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def test_local_registration_commits_blob_document_and_metadata_together(db, blobs):
    repo = SqlRepository(
        db, blobs, repository_unique_id=REPO_ID, registry=SqlRegistry(db, patients=KnownPatients())
    )
    submit(repo)
    assert (count(db, Blob), count(db, RepositoryDocument), count(db, DocumentEntryRow)) == (
        1,
        1,
        1,
    )


def test_a_failure_inside_the_registry_transaction_commits_nothing(db, blobs, monkeypatch):
    def broken(self, registration):
        raise RuntimeError("disk full")

    monkeypatch.setattr(SqlRegistryTransaction, "save", broken)
    repo = SqlRepository(
        db, blobs, repository_unique_id=REPO_ID, registry=SqlRegistry(db, patients=KnownPatients())
    )
    with pytest.raises(RuntimeError):
        submit(repo)
    assert (count(db, Blob), count(db, RepositoryDocument), count(db, DocumentEntryRow)) == (
        0,
        0,
        0,
    )
    assert sweep_orphans(db, blobs, timedelta(0)).blobs_removed == 1


class FailingSave(InMemoryRegistry):
    def save(self, registration):
        super().save(registration)
        raise RuntimeError("lost the registry")


def test_a_registry_without_a_session_gets_documents_first_and_takes_them_back(db, blobs):
    ok = InMemoryRegistry()
    repo = SqlRepository(db, blobs, repository_unique_id=REPO_ID, registry=ok)
    submit(repo)
    assert count(db, RepositoryDocument) == 1 and len(ok.objects) == 3
    db2_repo = SqlRepository(db, blobs, repository_unique_id=REPO_ID, registry=FailingSave())
    with db.session() as s:
        s.execute(sa.delete(RepositoryDocument))
        s.execute(sa.delete(Blob))
    with pytest.raises(RuntimeError):
        submit(db2_repo)
    assert (count(db, Blob), count(db, RepositoryDocument)) == (0, 0)


class Client:
    def __init__(self, refuse: GatewayError | None = None) -> None:
        self.refuse, self.sent = refuse, []

    def register(self, submission) -> None:
        self.sent.append(submission)
        if self.refuse is not None:
            raise self.refuse


def test_remote_registry_gets_the_completed_metadata(db, blobs):
    client = Client()
    repo = SqlRepository(db, blobs, repository_unique_id=REPO_ID, registry_client=client)
    submit(repo)
    (sent,) = client.sent
    entry = sent.document_entries[0]
    assert (entry.hash, entry.size, entry.repository_unique_id) == (SHA1, len(CONTENT), REPO_ID)
    assert count(db, RepositoryDocument) == 1


def test_remote_refusal_takes_the_documents_back_and_leaves_an_orphan(db, blobs):
    repo = SqlRepository(
        db,
        blobs,
        repository_unique_id=REPO_ID,
        registry_client=Client(XDSRegistryError("no", location="x")),
    )
    with pytest.raises(GatewayError) as info:
        submit(repo)
    assert info.value.code == "XDSRegistryError"
    assert (count(db, Blob), count(db, RepositoryDocument)) == (0, 0)
    assert repo.find(["1.2.3.4.5.100.1"]) == {}
    assert sweep_orphans(db, blobs, timedelta(0)).blobs_removed == 1


def test_no_registry_at_all_is_a_repository_error(db, blobs):
    with pytest.raises(GatewayError) as info:
        submit(SqlRepository(db, blobs, repository_unique_id=REPO_ID))
    assert info.value.code == "XDSRepositoryError"


def test_attachments_are_adopted_or_copied_and_checked(db, blobs, tmp_path):
    repo = SqlRepository(db, blobs, repository_unique_id=REPO_ID)
    spooled = tmp_path / "part"
    spooled.write_bytes(CONTENT)
    att = Attachment(
        "c", "text/plain", len(CONTENT), SHA1, partial(open, spooled, "rb"), path=str(spooled)
    )
    assert repo.store(att).sha1 == SHA1 and not spooled.exists()
    assert repo.store(att).sha1 == SHA1  # a second include of the same part
    lying = Attachment("c", "text/plain", 3, SHA1, lambda: io.BytesIO(b"other"))
    with pytest.raises(GatewayError):
        repo.store(lying)


def test_same_unique_id_with_other_content_is_refused(db, blobs):
    repo = SqlRepository(db, blobs, repository_unique_id=REPO_ID, registry=InMemoryRegistry())
    submit(repo)
    other = request()
    other = replace(other, documents={"Document01": b"something else"})
    with pytest.raises(GatewayError) as info:
        provide_and_register(
            other,
            SqlRepository(db, blobs, repository_unique_id=REPO_ID, registry_client=Client()),
            actor="repository",
            time="20260101000000",
        )
    assert info.value.code == "XDSNonIdenticalHash"
