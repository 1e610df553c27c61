"""The XUA tests' fixed instant: the test PKI is issued around it and the verifier's clock
stands still at it, so validity windows are exact. Fixtures ``pki`` and ``clock``, found
by name through the conftest.py files that import them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.profiles.xua.pki import Pki, build_pki

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class FixedClock:
    at: datetime = NOW

    def now(self) -> datetime:
        return self.at


@pytest.fixture(scope="session")
def pki() -> Pki:
    return build_pki(NOW)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()
