"""Fixtures for the storage tests: a migrated database and a blob store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import migrate
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A Database at head (SQLite file, or PostgreSQL when configured)."""
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")

