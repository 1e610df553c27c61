"""The sender delivers the outbox to a real repository over TLS and UDP, with retry:
nothing is lost while a repository is down, and nothing is sent twice."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from gateway.audit.models import FAILED, PENDING, SENT, AuditDelivery, AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.audit.repository import AuditRepository
from gateway.audit.sender import AuditSender, SenderSettings
from gateway.config import AuditDestination
from gateway.store.db import Database
from tests.gateway.audit.helpers import query_message, wait_for

FAST = SenderSettings(poll_interval=0.05, retry_base=0.05, retry_cap=0.4, connect_timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_to(port: int) -> AuditDestination:
    return AuditDestination("tls", "localhost", port)


def stored(db: Database) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def states(db: Database) -> dict[str, int]:
    with db.session() as s:
        q = sa.select(AuditDelivery.state, sa.func.count()).group_by(AuditDelivery.state)
        return dict(s.execute(q).all())


@pytest.fixture
def make_sender(pki) -> Iterator[Callable[..., AuditSender]]:
    senders: list[AuditSender] = []

    def make(db: Database, destinations, *, settings=FAST, context=None) -> AuditSender:
        sender = AuditSender(db, destinations, context or pki.client_context, settings=settings)
        sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.stop()


def test_records_reach_the_repository_over_mutual_tls(db, repo_db, make_repository, make_sender):
    repo = make_repository()
    dest = tls_to(repo.tls_address[1])
    queue = AuditQueue(db, [dest])
    with db.session() as s:
        records = [queue.enqueue(s, query_message(i)) for i in range(5)]
    make_sender(db, [dest])
    wait_for(lambda: stored(repo_db) == 5, timeout=30, what="5 records stored")
    with repo_db.session() as s:
        got = {e.record_id: e for e in s.scalars(sa.select(AuditEntry))}
    for record in records:
        entry = got[record.record_id]
        assert entry.xml == record.xml  # kept verbatim
        assert entry.origin == "received" and entry.peer_address == "127.0.0.1"
        assert entry.peer_subject.startswith("commonName=gateway,")
        assert entry.syslog_app_name == "ihe-gateway"
    wait_for(lambda: states(db) == {SENT: 5}, timeout=10, what="outbox marked sent")
    assert queue.backlog()["pending"] == 0
    assert repo.stats["duplicates"] == 0 and repo.stats["invalid"] == 0


def test_records_reach_the_repository_over_udp(db, repo_db, make_repository, make_sender):
    repo = make_repository(tls_port=None, udp_port=0)
    dest = AuditDestination("udp", "127.0.0.1", repo.udp_address[1])
    queue = AuditQueue(db, [dest])
    with db.session() as s:
        queue.enqueue_many(s, (query_message(i) for i in range(20)))
    make_sender(db, [dest])
    wait_for(lambda: stored(repo_db) == 20, timeout=30, what="20 datagrams stored")
    wait_for(lambda: states(db) == {SENT: 20}, timeout=10, what="outbox marked sent")


def test_a_record_too_large_for_a_datagram_is_kept_not_truncated(db, make_sender, caplog):
    dest = AuditDestination("udp", "127.0.0.1", free_port())
    queue = AuditQueue(db, [dest])
    queue.enqueue_now(query_message(1))
    settings = SenderSettings(poll_interval=0.05, udp_max_datagram=500)
    with caplog.at_level(logging.ERROR, logger="gateway.audit"):
        make_sender(db, [dest], settings=settings)
        wait_for(lambda: states(db) == {FAILED: 1}, timeout=10, what="marked undeliverable")
    assert queue.backlog()["undeliverable"] == 1
    assert "too large for a datagram" in caplog.text
    assert "P-1" not in caplog.text  # no PHI in logs


def test_a_repository_down_while_1000_transactions_run_receives_all_of_them(
    db, repo_db, make_repository, make_sender, caplog
):
    port = free_port()
    dest = tls_to(port)
    queue = AuditQueue(db, [dest])
    make_sender(db, [dest])
    with caplog.at_level(logging.WARNING, logger="gateway.audit"):
        for i in range(1000):
            with db.session() as s:  # one transaction each, staged as a request stages it
                queue.stage(s, [query_message(i)])
        wait_for(
            lambda: queue.backlog()["destinations"][f"tls://localhost:{port}"]["retrying"] > 0,
            timeout=30,
            what="a failed delivery attempt",
        )
    assert f"audit delivery to tls://localhost:{port} failed" in caplog.text
    assert re.search(r"; backlog [1-9]\d* record\(s\)", caplog.text)  # the logs show it
    assert "P-1" not in caplog.text and "Jane" not in caplog.text
    report = queue.backlog()
    assert report["pending"] == 1000
    assert report["destinations"][f"tls://localhost:{port}"]["last_error"]

    repo = make_repository(tls_port=port)  # the repository comes back
    wait_for(lambda: stored(repo_db) == 1000, timeout=60, what="1,000 records stored")
    wait_for(lambda: queue.backlog()["pending"] == 0, timeout=10, what="an empty backlog")
    assert repo.stats["frames"] == 1000 and repo.stats["duplicates"] == 0


def test_a_burst_of_10000_records_with_two_senders_arrives_exactly_once(
    database_url, db, repo_db, make_repository, make_sender
):
    repo = make_repository()
    dest = tls_to(repo.tls_address[1])
    queue = AuditQueue(db, [dest])
    other = Database(database_url, pool_size=2)  # the second sender, as another process would
    try:
        senders = [make_sender(db, [dest]), make_sender(other, [dest])]
        for t in range(1000):  # 1,000 transactions of 10 records, while both senders
            with db.session() as s:  # index the inbox and drain the outbox
                queue.stage(s, (query_message(t * 10 + i) for i in range(10)))
        wait_for(lambda: stored(repo_db) == 10_000, timeout=240, what="10,000 records stored")
        wait_for(lambda: states(db) == {SENT: 10_000}, timeout=30, what="all marked sent")
    finally:
        other.dispose()
    assert repo.stats["frames"] == 10_000  # no record was sent twice
    assert sum(s.delivered for s in senders) == 10_000
    assert all(s.delivered > 0 for s in senders)  # both took part
    assert repo.stats["duplicates"] == 0 and repo.stats["invalid"] == 0


def test_a_repository_that_cannot_store_resets_and_the_batch_is_retried(
    db, repo_db, tmp_path, pki, audit_schema, make_repository, make_sender
):
    """No acknowledgement in syslog: a batch the repository did not store must not count."""
    broken = Database(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no tables: inserts fail
    port = free_port()
    bad = AuditRepository(
        broken,
        host="127.0.0.1",
        tls_port=port,
        tls_context=pki.server_context(),
        schema=audit_schema,
    )
    bad.start()
    queue = AuditQueue(db, [tls_to(port)])
    queue.enqueue_now(query_message(1))
    try:
        make_sender(db, [tls_to(port)])
        wait_for(lambda: bad.stats["frames"] == 0 and bad.stats["connections"] >= 2, timeout=30)
        assert states(db) == {PENDING: 1}
    finally:
        bad.stop()
        broken.dispose()
    make_repository(tls_port=port)
    wait_for(lambda: stored(repo_db) == 1, timeout=30, what="the retried record")
    wait_for(lambda: states(db) == {SENT: 1}, timeout=10, what="marked sent")


def test_two_senders_claim_disjoint_batches(database_url, db, pki) -> None:
    """The claim pushes rows one lease ahead: a second claimer gets the others."""
    dest = tls_to(free_port())
    AuditQueue(db, [dest]).enqueue_now(query_message(1))
    with db.session() as s:
        AuditQueue(db, [dest]).enqueue_many(s, (query_message(i) for i in range(2, 6)))
    settings = SenderSettings(batch_size=3)
    a = AuditSender(db, [dest], pki.client_context, settings=settings)
    other = Database(database_url)
    try:
        b = AuditSender(other, [dest], pki.client_context, settings=settings)
        first, second = a._claim(a._destinations[0].key), b._claim(b._destinations[0].key)
    finally:
        other.dispose()
    assert len(first) == 3 and len(second) == 2
    assert not {r.delivery_id for r in first} & {r.delivery_id for r in second}


def test_postgresql_claims_skip_rows_another_sender_has_locked(pg_url, pki) -> None:
    """While one claim transaction is open, a second one does not wait: it skips."""
    from gateway.store import migrate

    migrate.upgrade(pg_url)
    db, other = Database(pg_url), Database(pg_url)
    dest = tls_to(free_port())
    try:
        with db.session() as s:
            AuditQueue(db, [dest]).enqueue_many(s, (query_message(i) for i in range(4)))
        settings = SenderSettings(batch_size=2)
        b = AuditSender(other, [dest], pki.client_context, settings=settings)
        key = b._destinations[0].key
        with db.session() as s:  # sender A's claim, still uncommitted
            locked = (
                s.execute(
                    sa.select(AuditDelivery.id)
                    .order_by(AuditDelivery.id)
                    .limit(2)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            result: dict = {}
            claim = threading.Thread(target=lambda: result.update(rows=b._claim(key)))
            claim.start()
            claim.join(10)  # would wait for A's lock without SKIP LOCKED
            assert not claim.is_alive(), "the second claim waited for the first one's lock"
            assert len(result["rows"]) == 2
            assert not set(locked) & {r.delivery_id for r in result["rows"]}
    finally:
        db.dispose()
        other.dispose()
