"""Helpers for the audit I/O tests: a throwaway PKI, audit messages, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from certs.authority import create_authority, issue
from gateway.audit import queue as queue_module
from gateway.audit.transport import client_context, server_context
from gateway.config import Tls
from profiles.atna.codes import AuditSourceType, Side
from profiles.atna.events import Endpoint, HumanRequestor, Occasion, query_event
from profiles.atna.message import AuditMessage, AuditSourceIdentification, EventOutcome

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and certificates for ``localhost`` (test fixtures only, never committed)."""

    ca: Path
    server: Tls  # the repository's identity
    client: Tls  # the gateway's identity
    stranger: Tls  # a certificate from another CA

    def client_context(self):
        return client_context(self.client)

    def server_context(self):
        return server_context(self.server)


def make_pki(dir_: Path) -> Pki:
    """Test CA and leaves from ``certs.authority`` (RSA, SAN localhost and 127.0.0.1)."""
    ca = create_authority("test audit CA")
    other = create_authority("another CA")
    (dir_ / "ca.pem").write_bytes(ca.certificate_pem())

    def leaf(authority, name: str) -> Tls:
        cert, key = dir_ / f"{name}.pem", dir_ / f"{name}.key"
        issue(authority, name).save(cert, key)
        return Tls(cert, key, dir_ / "ca.pem")

    return Pki(
        ca=dir_ / "ca.pem",
        server=leaf(ca, "repository"),
        client=leaf(ca, "gateway"),
        stranger=leaf(other, "stranger"),
    )


def wait_for(predicate: Callable[[], object], *, timeout: float = 60.0, what: str = "") -> None:
    """Poll until ``predicate()`` is true; fail at the deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


SOURCE = AuditSourceIdentification(
    "gateway.example.org",
    enterprise_site_id="1.3.6.1.4.1.21367.2011.2.1",
    type_codes=(AuditSourceType.APPLICATION_SERVER,),
)


def query_message(
    n: int,
    *,
    transaction: str = "ITI-38",
    patient: str = "P-1^^^&1.2.840.99&ISO",
    user: str | None = "Dr. Jane Smith",
    when: datetime | None = None,
    outcome: EventOutcome = EventOutcome.SUCCESS,
    host: str = "10.1.2.3",
) -> AuditMessage:
    """A responding-side query record; ``n`` makes each one distinct."""
    human = (
        HumanRequestor(subject_id=user, name_id="jsmith", issuer="https://idp.example.net")
        if user
        else None
    )
    return query_event(
        transaction,
        Side.RESPONDER,
        Occasion(SOURCE, when or NOW + timedelta(microseconds=n), outcome),
        initiator=Endpoint("http://www.w3.org/2005/08/addressing/anonymous", host=host),
        responder=Endpoint("https://gateway.example.org/xca/query", host="gateway.example.org"),
        query=b"<AdhocQueryRequest/>",
        query_id=f"urn:uuid:{n:08d}-0000-0000-0000-000000000000",
        human=human,
        patient_ids=[patient] if patient else [],
        home_community_id="urn:oid:1.2.3",
    )


def break_the_inbox(monkeypatch) -> None:
    """Every way a record is staged now fails (a table that does not exist)."""
    missing = sa.Table("no_such_table", sa.MetaData(), sa.Column("xml", sa.LargeBinary))
    monkeypatch.setattr(queue_module, "AuditInboxEntry", type("Missing", (), {
        "__table__": missing}))
