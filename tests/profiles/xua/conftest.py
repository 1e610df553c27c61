"""Fixtures for the XUA tests: a test PKI, a fixed clock, an in-memory replay cache and
a ``verify`` helper wired the way the gateway will call the verifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pytest
from lxml import etree

from profiles.xua import SecurityRefused, TrustAnchors, XuaPolicy, verify_security_header
from tests.profiles.xua.fixed_time import clock, pki  # noqa: F401 - fixtures, found by name
from tests.profiles.xua.messages import reparse, security_of
from tests.profiles.xua.pki import Pki


@dataclass
class MemoryReplayCache:
    keys: dict[str, datetime] = field(default_factory=dict)

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = expires_at
        return True


@pytest.fixture
def replay() -> MemoryReplayCache:
    return MemoryReplayCache()


@pytest.fixture
def trust(pki: Pki) -> TrustAnchors:  # noqa: F811 - the fixture
    return TrustAnchors(roots=(pki.ca.cert,))


@pytest.fixture
def verify(pki, trust, clock, replay):  # noqa: F811 - the fixture
    """verify(envelope, **overrides) -> Principal, after a serialize/parse round trip."""

    def run(envelope: etree._Element, **overrides):
        kwargs = {
            "trust": trust,
            "policy": XuaPolicy(),
            "clock": clock,
            "replay_cache": replay,
            "tls_client_cert": pki.partner.cert,
        }
        kwargs.update(overrides)
        return verify_security_header(security_of(reparse(envelope)), **kwargs)

    return run


@pytest.fixture
def refused(verify):
    """refused(envelope, subcode, **overrides) -> the SecurityRefused, checked for leaks."""

    def run(envelope: etree._Element, subcode: str, **overrides) -> SecurityRefused:
        with pytest.raises(SecurityRefused) as info:
            verify(envelope, **overrides)
        fault = info.value
        assert fault.code == "Sender"
        assert fault.subcodes[0][1] == subcode, fault.internal_reason
        assert fault.reason == fault.wsse_fault.reason  # fixed text, nothing specific
        assert fault.internal_reason and fault.internal_reason not in fault.reason
        return fault

    return run
