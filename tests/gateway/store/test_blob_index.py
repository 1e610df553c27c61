"""The blobs table and the orphan sweep: documents first, metadata second, orphans swept."""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.blobindex import BlobSizeConflict, is_recorded, record_blob, sweep_orphans
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.models import Blob


def age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_record_is_idempotent_and_checks_the_size(db: Database) -> None:
    key = "c" * 40
    with db.session() as s:
        record_blob(s, key, 10)
        record_blob(s, key.upper(), 10)
    with db.session() as s:
        assert is_recorded(s, key)
        assert s.scalar(sa.select(sa.func.count()).select_from(Blob)) == 1
    with pytest.raises(BlobSizeConflict), db.session() as s:
        record_blob(s, key, 11)
    with pytest.raises(ValueError), db.session() as s:
        record_blob(s, "../etc", 1)


def test_two_workers_recording_the_same_blob_at_once(db: Database, database_url: str) -> None:
    """Two submissions of one document commit concurrently: neither fails on the key."""
    other = Database(database_url)
    key = "d" * 40
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def submit(database: Database) -> None:
        start.wait()
        try:
            with database.session() as s:
                record_blob(s, key, 5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(db if i % 2 else other,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    assert errors == []
    with db.session() as s:
        assert s.get(Blob, key).size == 5


def test_a_failed_submission_leaves_an_orphan_that_the_sweep_removes(
    db: Database, store: FileBlobStore
) -> None:
    registered, size = store.put(io.BytesIO(b"<doc>committed</doc>"))
    with db.session() as s:
        record_blob(s, registered, size)

    crashed, crashed_size = store.put(io.BytesIO(b"<doc>metadata never committed</doc>"))
    with pytest.raises(RuntimeError), db.session() as s:
        record_blob(s, crashed, crashed_size)
        raise RuntimeError("metadata rejected")

    for key in (registered, crashed):
        age(store.path(key))
    report = sweep_orphans(db, store, older_than=timedelta(hours=1))
    assert (report.blobs_removed, report.bytes_removed) == (1, crashed_size)
    assert store.exists(registered) and not store.exists(crashed)


def test_the_sweep_sees_rows_committed_while_it_runs(
    db: Database, store: FileBlobStore, database_url: str
) -> None:
    """Each question is a fresh transaction: a row another worker commits mid-sweep counts."""
    first, first_size = store.put(io.BytesIO(b"first"))
    second, second_size = store.put(io.BytesIO(b"second"))
    for key in (first, second):
        age(store.path(key))
    other = Database(database_url)
    real_sweep = store.sweep

    def sweep(referenced, older_than):
        def wrapped(key: str) -> bool:
            answer = referenced(key)
            with other.session() as s:  # another worker commits both after our first look
                record_blob(s, first, first_size)
                record_blob(s, second, second_size)
            return answer

        return real_sweep(wrapped, older_than)

    store.sweep = sweep  # type: ignore[method-assign]
    try:
        report = sweep_orphans(db, store, older_than=timedelta(hours=1))
    finally:
        other.dispose()
    assert report.blobs_removed == 1  # the one looked at before the commit; not the other
    assert store.exists(first) != store.exists(second)
