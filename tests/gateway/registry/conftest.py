"""A migrated database (SQLite, or PostgreSQL when configured), a SqlRegistry on it with a
set of known patients, and helpers to register builders' submissions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gateway.registry.store import SqlRegistry
from gateway.store import migrate
from gateway.store.db import Database
from profiles.hl7v3.datatypes import II
from profiles.xds import iti42
from profiles.xds.ebrim import submit_objects_request_to_xml
from profiles.xds.metadata import Submission
from tests.profiles.xds.builders import OTHER_PATIENT, PATIENT


@dataclass
class KnownPatients:
    """``known(II)`` over a set of CX strings, as SqlPatientIndex answers it."""

    cx: set[str] = field(default_factory=lambda: {PATIENT, OTHER_PATIENT})

    def known(self, ii: II) -> bool:
        return f"{ii.extension}^^^&{ii.root}&ISO" in self.cx


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def registry(db: Database) -> SqlRegistry:
    return SqlRegistry(db, patients=KnownPatients())


def register(registry, sub: Submission, time: str = "20250101120000") -> dict[str, str]:
    """Register ``sub``; symbolic id -> entryUUID assigned."""
    request = iti42.parse(submit_objects_request_to_xml(sub))
    stored = iti42.register(registry, request, time).registered
    return dict(zip((o.entry_uuid for o in sub.registry_objects()), stored, strict=False))
