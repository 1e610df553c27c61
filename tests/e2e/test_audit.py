"""The served gateway audits itself: application start, and refused requests."""

from __future__ import annotations

import uuid

import pytest

from gateway.audit.search import AuditQuery, search
from gateway.config import load_config
from gateway.store.db import Database
from tests.e2e.test_soap import envelope

pytestmark = pytest.mark.e2e


def records(gateway, url, **query):
    """The served community's audit trail, read from the database it really uses."""
    db = Database(url or load_config(gateway.config, environ={}).database_url, pool_size=1)
    try:
        return list(search(db, AuditQuery(**query)))
    finally:
        db.dispose()


def test_application_start_is_audited(gateway, e2e_database_url):
    assert any(f.entry.event_id == "110100" for f in records(gateway, e2e_database_url))


def test_a_refused_request_leaves_a_security_alert(gateway, session, e2e_database_url):
    def alerts() -> int:
        return sum(f.entry.event_id == "110113" for f in records(gateway, e2e_database_url))

    before = alerts()
    resp = session.post(
        f"{gateway.base_url}/xds/registry",
        data=envelope("urn:example:Nope", f"urn:uuid:{uuid.uuid4()}", "https://x"),
        headers={"Content-Type": "application/soap+xml"},
    )
    assert resp.status_code == 400
    # The record is written when the server closes the response; await it (bounded).
    for _ in range(200):
        after = alerts()
        if after > before:
            break
    assert after == before + 1
