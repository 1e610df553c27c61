"""Fixtures for the XUA gate: the XUA test PKI, a fixed clock, a migrated database,
trust files on disk and a gate builder that records refusals in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.security import Refusal, XuaGate, XuaSettings, build_security
from gateway.store import migrate
from gateway.store.db import Database
from tests.profiles.xua.fixed_time import clock, pki  # noqa: F401 - fixtures, found by name
from tests.profiles.xua.pki import Identity, Pki


@dataclass
class Recorded:
    refusals: list[Refusal] = field(default_factory=list)

    def __call__(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)


@dataclass(frozen=True)
class FakeTls:
    trust_store: Path


@dataclass(frozen=True)
class FakePartner:
    """A [[partners]] entry with the XUA keys proposed for gateway.config.Partner."""

    home_community_id: str
    name: str
    ca: Path | None = None
    allow_sha1: bool = False
    purpose_for_use: bool = False
    signing_certificates: Path | None = None


@dataclass(frozen=True)
class FakeConfig:
    """What build_security reads from gateway.config.Config (and the proposed ``xua``)."""

    tls: FakeTls | None
    partners: tuple[FakePartner, ...] = ()
    xua: XuaSettings | None = None


def pem(path: Path, *identities: Identity) -> Path:
    path.write_bytes(b"".join(i.cert.public_bytes(Encoding.PEM) for i in identities))
    return path


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    migrate.upgrade(database_url)
    database = Database(database_url, pool_size=8)
    yield database
    database.dispose()


@pytest.fixture
def trust_store(tmp_path: Path, pki: Pki) -> Path:  # noqa: F811 - the fixture
    return pem(tmp_path / "trust.pem", pki.ca)


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def make_gate(db, clock, recorded, trust_store):  # noqa: F811 - the fixture
    """make_gate(settings=None, partners=(), tls=True) -> XuaGate on the test database."""

    def make(settings: XuaSettings | None = None, partners=(), *, tls: bool = True) -> XuaGate:
        config = FakeConfig(
            tls=FakeTls(trust_store) if tls else None, partners=tuple(partners), xua=settings
        )
        return build_security(config, db, clock=clock, record=recorded)

    return make
