"""Fixtures for the audit I/O tests: a test PKI, migrated databases, and an audit
record repository on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

import wsdl
from gateway.audit.repository import AuditRepository
from gateway.store import migrate
from gateway.store.db import Database
from tests.gateway.audit.helpers import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def audit_schema() -> etree.XMLSchema:
    return wsdl.schema("atna")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The gateway's database at head (PostgreSQL when GATEWAY_TEST_DATABASE_URL is set)."""
    migrate.upgrade(database_url)
    database = Database(database_url, pool_size=8)
    yield database
    database.dispose()


@pytest.fixture
def repo_db(tmp_path: Path) -> Iterator[Database]:
    """The repository's own store: always a separate SQLite file, so the records it
    receives are never mistaken for the gateway's own queued copies."""
    url = f"sqlite:///{tmp_path / 'repository.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def make_repository(repo_db, pki, audit_schema) -> Iterator[Callable[..., AuditRepository]]:
    started: list[AuditRepository] = []

    def make(*, tls_port: int | None = 0, udp_port: int | None = None, **kw) -> AuditRepository:
        repo = AuditRepository(
            kw.pop("database", repo_db),
            host="127.0.0.1",
            tls_port=tls_port,
            udp_port=udp_port,
            tls_context=pki.server_context() if tls_port is not None else None,
            schema=audit_schema,
            **kw,
        )
        repo.start()
        started.append(repo)
        return repo

    yield make
    for repo in started:
        repo.stop()
