"""Fixtures: one served community for all end-to-end tests, and a mutual-TLS session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from gateway import demo
from tests.conftest import _reset_postgres, postgres_url
from tests.e2e.support import start_gateway, stop_gateway


@pytest.fixture(scope="package")
def e2e_database_url() -> str | None:
    url = postgres_url()
    if url:
        _reset_postgres(url)
    return url


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
