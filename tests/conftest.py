"""Shared fixtures: conformance material, database URLs, configurations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
PG_ENV = "GATEWAY_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def conformance() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"conformance material not found at {CONFORMANCE}")
    return CONFORMANCE


@pytest.fixture(scope="module")
def community_template(tmp_path_factory) -> Path:
    """One ``ihe-gateway init`` community (SQLite) per test module; ``community`` copies it."""
    from gateway.community import init_community
    from gateway.config import DATABASE_ENV

    directory = tmp_path_factory.mktemp("template") / "community"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATABASE_ENV, raising=False)
        init_community(directory, port=18443)
    return directory


@pytest.fixture
def community(community_template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the module's community, for a test that changes it."""
    import shutil

    from gateway.config import DATABASE_ENV

    monkeypatch.delenv(DATABASE_ENV, raising=False)
    target = tmp_path / "community"
    shutil.copytree(community_template, target)
    return target


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The suite's database: PostgreSQL (emptied) when GATEWAY_TEST_DATABASE_URL is set,
    else a fresh SQLite file."""
    url = postgres_url()
    if url:
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def pg_url() -> str:
    """PostgreSQL only; skips when GATEWAY_TEST_DATABASE_URL is unset."""
    url = postgres_url()
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    _reset_postgres(url)
    return url


def make_config_dict(data_dir: Path, database_url: str, **overrides) -> dict:
    """A minimal valid gateway.toml as a dict, for in-process tests."""
    cfg = {
        "community": {"home_community_id": "1.3.6.1.4.1.21367.2011.2.1", "name": "Test"},
        "storage": {"data_dir": str(data_dir)},
        "database": {"url": database_url},
    }
    cfg.update(overrides)
    return cfg
