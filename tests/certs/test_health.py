"""Expiry monitoring: /healthz warns on any certificate in the window and fails on our own."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from certs.changes import pem
from gateway.community import init_community
from gateway.config import DATABASE_ENV, load_config
from gateway.health import health_report
from gateway.server import _warn_expiry
from tests.certs import pki


@pytest.fixture
def community(tmp_path, monkeypatch):
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    init_community(tmp_path / "c", port=18443)
    return tmp_path / "c"


def report(community):
    config = load_config(community / "gateway.toml")
    rt = SimpleNamespace(config=config, database=SimpleNamespace(ping=lambda: True))
    return health_report(rt)


def test_warning_for_a_trusted_ca_in_the_window_keeps_health_ok(community, caplog):
    assert "certificate_warnings" not in report(community)
    store = community / "certs" / "trust.pem"
    soon = pki.make("Soon-gone partner CA", ca=True, end=pki.NOW + timedelta(days=5))
    store.write_bytes(store.read_bytes() + pem([soon.certificate]))
    found = report(community)
    assert found["status"] == "ok"
    (warning,) = found["certificate_warnings"]
    assert warning["status"] == "<30 days" and "Soon-gone" in warning["subject"]
    with caplog.at_level(logging.WARNING, logger="gateway.server"):
        _warn_expiry(load_config(community / "gateway.toml"))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("certificate <30 days: trusted CA") and "Soon-gone" in line
    assert "trust.pem" in line


def test_our_own_expired_certificate_fails_health(community):
    ca = pki.make("Some CA", ca=True)
    lapsed = pki.make("localhost", ca, start=pki.NOW - timedelta(days=9),
                      end=pki.NOW - timedelta(days=1))
    (community / "certs" / "gateway.pem").write_bytes(pem([lapsed.certificate]))
    found = report(community)
    assert found["status"] == "fail"
    assert found["certificates"][0]["status"] == "expired"
    assert any(w["role"].startswith("gateway") for w in found["certificate_warnings"])
