"""Fixtures: one served community for all end-to-end tests, a mutual-TLS session, a
PostgreSQL database of its own for a module that serves communities of its own, and the
XUA tests' community members and audit database (xua_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from gateway import demo
from tests.conftest import _reset_postgres, postgres_url
from tests.e2e.databases import own_database
from tests.e2e.support import start_gateway, stop_gateway
from tests.e2e.xua_support import audit_db, members  # noqa: F401 - fixtures, found by name


@pytest.fixture(scope="package")
def e2e_database_url() -> str | None:
    url = postgres_url()
    if url:
        _reset_postgres(url)
    return url


@pytest.fixture(scope="module")
def own_database_url(request) -> Iterator[str | None]:
    """``<database>_<module name without test_>`` on PostgreSQL, dropped after the module;
    None without GATEWAY_TEST_DATABASE_URL (each community's own SQLite)."""
    yield from own_database(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))


@pytest.fixture(scope="package")
def gateway(tmp_path_factory, e2e_database_url) -> Iterator[demo.Gateway]:
    served = start_gateway(tmp_path_factory.mktemp("e2e") / "community", e2e_database_url)
    yield served
    stop_gateway(served)


@pytest.fixture
def session(gateway) -> Iterator[requests.Session]:
    """Holds the community's client certificate; trusts only its CA (not REQUESTS_CA_BUNDLE)."""
    s = demo.mtls_session(gateway)
    yield s
    s.close()
