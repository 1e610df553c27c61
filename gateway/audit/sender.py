"""The background sender: delivers the audit outbox to the audit repositories.

One daemon thread per process; every gunicorn worker (and every machine on the
same PostgreSQL) may run one. They share the work through the database:

* a sender first moves a batch of the inbox (the records requests staged) into
  the indexed tables and the outbox (``AuditQueue.index_pending``);
* a sender *claims* a batch of due rows in a short transaction, pushing their
  ``next_attempt_at`` one lease ahead and writing its token; PostgreSQL skips
  rows another sender holds (``FOR UPDATE SKIP LOCKED``), SQLite serialises
  claims with ``BEGIN IMMEDIATE``. No database transaction stays open while
  the network is used, so a request's transaction never waits for a repository;
* it delivers the batch, then marks the rows sent, or schedules a retry with
  exponential back-off (and backs off from that destination as a whole, so a
  repository that is down is not dialled on every poll);
* if the process dies mid-batch, the lease runs out and another sender takes
  the rows again. Delivery is at least once; the repository de-duplicates.

Logs name destinations, counts and error kinds, never a patient or a user.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from gateway.audit.models import FAILED, PENDING, SENT, AuditDelivery, AuditEntry
from gateway.audit.queue import AuditQueue, destination_key
from gateway.audit.transport import (
    DeliveryResult,
    TlsContextFactory,
    TlsTransport,
    UdpTransport,
    error_kind,
)
from gateway.config import AuditDestination
from gateway.store.db import Database
from gateway.store.models import utcnow
from profiles.atna.syslog import UDP_MAX_IPV4, audit_syslog

log = logging.getLogger("gateway.audit")
BACKLOG_LOG_SECONDS = 60.0  # while a repository is down, its backlog is logged this often


@dataclass(frozen=True)
class SenderSettings:
    """Tuning; the defaults suit production, tests shorten the waits."""

    batch_size: int = 200
    poll_interval: float = 1.0  # seconds between looks at an idle outbox
    retry_base: float = 1.0  # first retry delay; doubles per failure
    retry_cap: float = 60.0  # longest delay between tries of a destination
    lease: float = 120.0  # how long a claimed batch is ours before others may take it
    connect_timeout: float = 10.0
    confirm_timeout: float = 5.0
    udp_max_datagram: int = UDP_MAX_IPV4
    app_name: str = "ihe-gateway"


@dataclass
class _Claimed:
    delivery_id: int
    record_id: str
    attempts: int
    xml: bytes
    event_time: datetime


class _Destination:
    """In-memory state for one destination: its transport and its back-off."""

    def __init__(self, key: str, transport) -> None:
        self.key = key
        self.transport = transport
        self.failures = 0
        self.down_until: datetime | None = None
        self.delivered = 0
        self.last_backlog_log = 0.0  # time.monotonic() of the last backlog warning


class AuditSender:
    """``start()`` a daemon thread delivering the outbox; ``stop()`` ends it after its batch."""

    def __init__(
        self,
        database: Database,
        destinations: Iterable[AuditDestination],
        tls_context_factory: TlsContextFactory | None = None,
        *,
        settings: SenderSettings | None = None,
        hostname: str | None = None,
    ) -> None:
        self.database = database
        self.settings = settings or SenderSettings()
        self.queue = AuditQueue(database, destinations)
        self.hostname = (hostname or socket.gethostname() or "-")[:255]
        self.procid = str(os.getpid())
        self.token = f"{self.hostname[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._destinations = []
        for dest in self.queue.destinations:
            key = destination_key(dest)
            if any(d.key == key for d in self._destinations):
                continue
            if dest.transport == "udp":
                transport = UdpTransport(
                    dest.host, dest.port, max_datagram=self.settings.udp_max_datagram
                )
            else:
                if tls_context_factory is None:
                    raise ValueError(f"{key}: a TLS destination needs a tls_context_factory")
                transport = TlsTransport(
                    dest.host,
                    dest.port,
                    tls_context_factory,
                    timeout=self.settings.connect_timeout,
                    confirm_timeout=self.settings.confirm_timeout,
                )
            self._destinations.append(_Destination(key, transport))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or not self._destinations:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audit-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Look at the outbox now (after enqueue_now, say) instead of at the next poll."""
        self._wake.set()

    def backlog(self) -> dict:
        return self.queue.backlog()

    @property
    def delivered(self) -> int:
        """Records this sender delivered since it was built (all destinations)."""
        return sum(d.delivered for d in self._destinations)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive a database hiccup
                log.error("audit sender pass failed (%s); retrying", error_kind(exc))
                busy = False
            if not busy:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()

    # -- one pass -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Index the inbox (a batch), then one batch per destination that is due; True
        when any batch was full (more waits)."""
        busy = self.queue.index_pending(self.settings.batch_size) >= self.settings.batch_size
        for dest in self._destinations:
            if self._stop.is_set():
                break
            if dest.down_until is not None and utcnow() < dest.down_until:
                continue
            claimed = self._claim(dest.key)
            if claimed:
                self._deliver(dest, claimed)
                busy |= len(claimed) >= self.settings.batch_size
        return busy

    def _claim(self, key: str) -> list[_Claimed]:
        d, e = AuditDelivery, AuditEntry
        now = utcnow()
        query = (
            sa.select(d.id, d.record_id, d.attempts, e.xml, e.event_time)
            .join(e, e.record_id == d.record_id)
            .where(d.destination == key, d.state == PENDING, d.next_attempt_at <= now)
            .order_by(d.id)
            .limit(self.settings.batch_size)
        )
        with self.database.session(immediate=True) as session:
            if self.database.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=d)
            rows = [_Claimed(*row) for row in session.execute(query)]
            if rows:
                session.execute(
                    sa.update(d)
                    .where(d.id.in_([r.delivery_id for r in rows]))
                    .values(
                        next_attempt_at=now + timedelta(seconds=self.settings.lease),
                        claimed_by=self.token,
                        attempts=d.attempts + 1,
                    )
                )
        return rows

    def _message(self, row: _Claimed) -> bytes:
        return audit_syslog(
            row.xml,
            timestamp=row.event_time,
            hostname=self.hostname,
            app_name=self.settings.app_name,
            procid=self.procid,
        )

    def _deliver(self, dest: _Destination, rows: list[_Claimed]) -> None:
        try:
            result = dest.transport.deliver([self._message(r) for r in rows])
        except Exception as exc:  # noqa: BLE001 - a transport bug must not lose the batch
            log.exception("audit transport to %s failed unexpectedly", dest.key)
            result = DeliveryResult(0, error=type(exc).__name__)
        refused = {rows[i].delivery_id for i in result.refused}
        sent = [r.delivery_id for r in rows[: result.sent] if r.delivery_id not in refused]
        retry = [r.delivery_id for r in rows[result.sent :]]
        now = utcnow()
        delay = 0.0
        if retry:
            dest.failures += 1
            delay = self._backoff(dest.failures)
            dest.down_until = now + timedelta(seconds=delay)
        with self.database.session() as session:
            self._mark(session, sent, state=SENT, sent_at=now, last_error=None)
            self._mark(session, list(refused), state=FAILED, last_error="datagram too large")
            self._mark(
                session,
                retry,
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=(result.error or "not delivered")[:200],
            )
            if not retry and dest.failures:
                # Back after an outage: what waited for its back-off is due now.
                session.execute(
                    sa.update(AuditDelivery)
                    .where(
                        AuditDelivery.destination == dest.key,
                        AuditDelivery.state == PENDING,
                        AuditDelivery.claimed_by.is_(None),
                        AuditDelivery.next_attempt_at > now,
                    )
                    .values(next_attempt_at=now)
                )
        dest.delivered += len(sent)
        if refused:
            log.error(
                "audit: %d record(s) too large for a datagram to %s; not sent there",
                len(refused),
                dest.key,
            )
        if retry:
            now = time.monotonic()
            loud = dest.failures == 1 or now - dest.last_backlog_log >= BACKLOG_LOG_SECONDS
            if loud:
                dest.last_backlog_log = now
            log.log(
                logging.WARNING if loud else logging.DEBUG,
                "audit delivery to %s failed (%s); %d record(s) retried in %.1fs; "
                "backlog %d record(s)",
                dest.key,
                result.error,
                len(retry),
                delay,
                self._pending(dest.key) if loud else -1,
            )
        elif dest.failures:
            log.info("audit delivery to %s resumed after %d failure(s)", dest.key, dest.failures)
            dest.failures = 0
            dest.down_until = None

    def _pending(self, key: str) -> int:
        """Records still owed to destination ``key`` (for the log line while it is down)."""
        try:
            return int(self.queue.backlog()["destinations"].get(key, {}).get("pending", 0))
        except Exception:  # noqa: BLE001 - a log line must not stop delivery
            return -1

    def _mark(self, session, ids: list[int], **values) -> None:
        if ids:
            session.execute(
                sa.update(AuditDelivery)
                .where(AuditDelivery.id.in_(ids))
                .values(claimed_by=None, **values)
            )

    def _backoff(self, failures: int) -> float:
        s = self.settings
        delay = min(s.retry_cap, s.retry_base * 2 ** (failures - 1))
        return delay * random.uniform(0.8, 1.0)
