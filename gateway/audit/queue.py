"""The durable audit queue: records written in the caller's own database transaction.

A request's records go through the *inbox*: ``stage(session, message)`` adds
one row holding the record (its XML, or for a transaction's record its recipe:
``profiles/atna/recipe.py``) to the session the transaction writes with,
so the record commits with the data or not at all, and once committed it
survives any crash of the process. One INSERT into a table without secondary
indexes is all the request pays (``bench/audit.py --breakdown``: the indexed
record, terms and delivery rows cost several times that). ``index_pending``
later moves inbox rows into ``audit_records`` with their search terms and one
delivery row per destination, in batches, off the request path: the sender
does it on every pass, and a search does it first, so a search never misses a
committed record.

``enqueue(session, message)`` writes the indexed form at once (node events,
the audit record repository); the background sender (``sender.py``) delivers
records later.

Inserts use ``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL): the
same record enqueued twice (same XML, hence same ``record_id``) is stored once
and never breaks the caller's transaction with a key violation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.audit.group import GroupCommit, Guard, Ticket
from gateway.audit.models import (
    FAILED,
    ORIGIN_LOCAL,
    PENDING,
    TERM_PATIENT,
    TERM_USER,
    AuditDelivery,
    AuditEntry,
    AuditInboxEntry,
    AuditTerm,
)
from gateway.config import AuditDestination
from gateway.store import withcommit
from gateway.store.db import Database
from gateway.store.driver import driver_of
from gateway.store.inbox import insert_inbox_rows
from gateway.store.models import utcnow
from profiles.atna.codec import audit_message_to_bytes
from profiles.atna.message import AuditError, AuditMessage
from profiles.atna.recipe import is_recipe, rebuild
from profiles.atna.record import AuditRecord, audit_record, record_from_xml

log = logging.getLogger("gateway.audit")
INDEX_BATCH = 500


def destination_key(destination: AuditDestination) -> str:
    """The outbox's name for a destination: ``tls://host:port`` or ``udp://host:port``."""
    host = destination.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{destination.transport}://{host}:{destination.port}"


_STATEMENTS: dict[tuple[str, str], sa.Insert] = {}


def _insert(session: Session, model: type, rows: list[dict], conflict: Sequence[str]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` on the session's own connection and transaction.

    Core, not the ORM: no autoflush, no bulk-persistence bookkeeping, and the
    statement is built once per dialect, so an enqueue costs little more than the
    database round trips themselves (``bench/audit.py``).
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    key = (dialect, model.__tablename__)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = ins(model.__table__).on_conflict_do_nothing(index_elements=list(conflict))
        _STATEMENTS[key] = stmt
    connection.execute(stmt, rows)


def record_row(record: AuditRecord, *, origin: str = ORIGIN_LOCAL, **received) -> dict:
    """The ``audit_records`` row for a record; ``received`` adds peer_address etc."""
    return {
        "record_id": record.record_id,
        "xml": record.xml,
        "event_time": record.event_time,
        "event_id": record.event_id,
        "event_type": record.event_type,
        "action": record.action,
        "outcome": record.outcome,
        "source_user": _cut(record.source_user, 1024),
        "source_address": _cut(record.source_address, 256),
        "destination_user": _cut(record.destination_user, 1024),
        "audit_source_id": _cut(record.audit_source_id, 256) or "",
        "origin": origin,
        "stored_at": utcnow(),
        "peer_address": _cut(received.get("peer_address"), 256),
        "peer_subject": _cut(received.get("peer_subject"), 1024),
        "syslog_hostname": _cut(received.get("syslog_hostname"), 255),
        "syslog_app_name": _cut(received.get("syslog_app_name"), 48),
    }


def term_rows(record: AuditRecord) -> list[dict]:
    terms = {(TERM_PATIENT, p) for p in record.patient_ids if p}
    terms |= {(TERM_USER, u) for u in record.users if u}
    return [{"record_id": record.record_id, "kind": k, "value": _cut(v, 1024)} for k, v in terms]


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def store_records(session: Session, rows: Iterable[tuple[AuditRecord, dict]]) -> None:
    """Insert records with their search terms (duplicates ignored); no deliveries."""
    rows = list(rows)
    _insert(session, AuditEntry, [r for _, r in rows], ["record_id"])
    terms = [t for rec, _ in rows for t in term_rows(rec)]
    _insert(session, AuditTerm, terms, ["record_id", "kind", "value"])


def _one_statement() -> sa.TextClause:
    """PostgreSQL: record, terms and deliveries in one round trip (data-modifying CTEs).

    The foreign keys of the terms and deliveries are checked at the end of the
    statement, when the record row exists.
    """
    columns = list(AuditEntry.__table__.columns.keys())
    types = {c.name: c.type for c in AuditEntry.__table__.columns}
    strings = postgresql.ARRAY(sa.String())
    sql = f"""
        WITH record AS (
            INSERT INTO audit_records ({", ".join(columns)})
            VALUES ({", ".join(":" + c for c in columns)})
            ON CONFLICT (record_id) DO NOTHING
        ), terms AS (
            INSERT INTO audit_record_terms (record_id, kind, value)
            SELECT :record_id, t.kind, t.value
            FROM unnest(:term_kinds, :term_values) AS t(kind, value)
            ON CONFLICT DO NOTHING
        )
        INSERT INTO audit_deliveries
            (record_id, destination, state, attempts, queued_at, next_attempt_at)
        SELECT :record_id, d.destination, '{PENDING}', 0, :stored_at, :stored_at
        FROM unnest(:destinations) AS d(destination)
        ON CONFLICT (record_id, destination) DO NOTHING
    """
    return sa.text(sql).bindparams(
        *(sa.bindparam(c, type_=types[c]) for c in columns),
        sa.bindparam("term_kinds", type_=strings),
        sa.bindparam("term_values", type_=strings),
        sa.bindparam("destinations", type_=strings),
    )


_POSTGRES_ENQUEUE = _one_statement()


class AuditQueue:
    """Writes audit records and their outbox rows; reads the backlog.

    ``destinations`` are the audit repositories each new record is owed to
    (``Config.audit``); with none, records are kept for local search only.
    """

    def __init__(self, database: Database, destinations: Iterable[AuditDestination] = ()):
        self.database = database
        self.destinations = tuple(destinations)
        self._keys = list(dict.fromkeys(destination_key(d) for d in self.destinations))
        self._group = GroupCommit(self._commit_staged)

    def enqueue(self, session: Session, item: AuditMessage | AuditRecord) -> AuditRecord:
        """Add one record to ``session``: it commits, or rolls back, with the caller's data."""
        record = item if isinstance(item, AuditRecord) else audit_record(item)
        row = record_row(record)
        terms = term_rows(record)
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            params = {
                **row,
                "term_kinds": [t["kind"] for t in terms],
                "term_values": [t["value"] for t in terms],
                "destinations": self._keys,
            }
            connection.execute(_POSTGRES_ENQUEUE, params)
            return record
        _insert(session, AuditEntry, [row], ["record_id"])
        _insert(session, AuditTerm, terms, ["record_id", "kind", "value"])
        now = row["stored_at"]
        deliveries = [
            {
                "record_id": record.record_id,
                "destination": key,
                "state": PENDING,
                "attempts": 0,
                "queued_at": now,
                "next_attempt_at": now,
            }
            for key in self._keys
        ]
        _insert(session, AuditDelivery, deliveries, ["record_id", "destination"])
        return record

    def stage(self, session: Session, messages: Iterable[AuditMessage | bytes], *,
              committing: bool = False) -> int:
        """Add records to ``session``'s inbox (one small INSERT): they commit, or roll
        back, with the caller's data, and ``index_pending`` indexes them later.
        ``bytes`` are a record's XML or its recipe, stored as given. ``committing``: the
        session is about to commit (its ``before_commit``); on PostgreSQL the rows then
        travel with the COMMIT instead of costing a round trip (``withcommit.py``)."""
        rows = [m if isinstance(m, bytes) else audit_message_to_bytes(m) for m in messages]
        if rows:
            with driver_of(session.connection()) as driver:
                if committing and self.database.dialect == "postgresql":
                    withcommit.add(driver, rows)
                else:
                    insert_inbox_rows(driver, rows)
        return len(rows)

    def stage_now(
        self, messages: Iterable[AuditMessage | bytes], guard: Guard | None = None
    ) -> bool:
        """Stage records in a transaction of their own (a request that wrote no data),
        returning once they are committed; concurrent callers share one commit
        (``group.py``). ``guard`` writes first in that transaction (a request's
        deferred XUA replay tokens); if it says no, the records are left out and
        this returns False. Raises what the database raises. Records alone skip the
        group: their relaxed commit waits for no flush, so there is nothing to share."""
        rows = [m if isinstance(m, bytes) else audit_message_to_bytes(m) for m in messages]
        if guard is not None:
            return self._group.write(rows, guard)
        self._rows_alone(rows)
        return True

    def _commit_staged(self, tickets: list[Ticket]) -> None:
        """A batch of guarded tickets (records with their replay tokens) in one commit."""
        if len(tickets) == 1 and self._alone(tickets[0]):
            return
        # Core, not a Session: no ORM bookkeeping, and no request's audit binds to it.
        with self.database.engine.begin() as connection:
            rows: list[bytes] = []
            for ticket in tickets:  # in the order GroupCommit sorted them
                if ticket.guard is not None:
                    ticket.accepted = ticket.guard(connection)
                if ticket.accepted:
                    rows += ticket.rows
            if rows:
                with driver_of(connection) as driver:
                    insert_inbox_rows(driver, rows)

    def _alone(self, ticket: Ticket) -> bool:
        """A lone guarded ticket in a transaction of its own on the driver, without
        SQLAlchemy's begin and commit machinery (``commit_with``: the tokens, then the
        rows; on PostgreSQL one statement). False: the shared transaction instead."""
        commit_with = getattr(ticket.guard, "commit_with", None)
        if commit_with is None:
            return False
        ticket.accepted = commit_with(AuditInboxEntry.__table__, list(ticket.rows))
        return True

    def _rows_alone(self, rows: list[bytes]) -> None:
        """Records with nothing else to commit (a read's, a refusal's), handed over
        without waiting for the disk: with the kernel before the caller returns (SQLite:
        appended to this process's spool, moved into the inbox soon, ``spool.py``;
        PostgreSQL: written to its connection, confirmed later, ``pgpipeline.py``), on
        disk within a fraction of a second; a replay token, whose loss would let a
        replay through, always takes the full flush."""
        if rows:
            self.database.hand_over_inbox_rows(rows)

    def index_pending(self, limit: int = INDEX_BATCH) -> int:
        """Move up to ``limit`` inbox rows into the indexed tables, in one transaction;
        return how many rows left the inbox. Safe to run in several processes at once
        (PostgreSQL skips rows another indexer holds; SQLite serialises writers)."""
        inbox = AuditInboxEntry.__table__
        query = sa.select(inbox.c.id, inbox.c.xml).order_by(inbox.c.id).limit(limit)
        if self.database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.database.session() as session:  # an empty inbox takes no write lock
            if session.scalar(sa.select(inbox.c.id).limit(1)) is None:
                return 0
        with self.database.session(immediate=True) as session:
            rows = session.execute(query).all()
            done, records = [], []
            for row_id, payload in rows:
                try:
                    if is_recipe(payload):  # facts staged by a request: build its messages
                        records += [audit_record(m) for m in rebuild(payload)]
                    else:
                        records.append(record_from_xml(payload))
                except AuditError as exc:  # never ours to lose: keep it and say so
                    log.error("audit inbox row %s cannot be indexed: %s", row_id, exc)
                    continue
                done.append(row_id)
            if done:
                self._enqueue_batch(session, records)
                session.execute(sa.delete(inbox).where(inbox.c.id.in_(done)))
        return len(done)

    def _enqueue_batch(self, session: Session, records: list[AuditRecord]) -> None:
        """``enqueue`` for many records: three multi-row INSERTs, duplicates ignored."""
        now = utcnow()
        store_records(session, [(r, record_row(r)) for r in records])
        deliveries = [
            {"record_id": r.record_id, "destination": key, "state": PENDING, "attempts": 0,
             "queued_at": now, "next_attempt_at": now}
            for r in records
            for key in self._keys
        ]
        _insert(session, AuditDelivery, deliveries, ["record_id", "destination"])

    def index_all(self) -> int:
        """Index the whole inbox (a search calls this first); return the rows moved. What
        this process handed over without waiting (a read's record) is confirmed first."""
        self.database.confirm_handed()
        total = 0
        while moved := self.index_pending():
            total += moved
        return total

    def enqueue_many(self, session: Session, items: Iterable[AuditMessage | AuditRecord]) -> int:
        count = 0
        for item in items:
            self.enqueue(session, item)
            count += 1
        return count

    def enqueue_now(self, message: AuditMessage | AuditRecord) -> AuditRecord:
        """Store a record in its own short transaction (application start/stop, alerts).

        Raises what the database raises: the caller decides whether to log and go on.
        """
        with self.database.session() as session:
            return self.enqueue(session, message)

    def backlog(self) -> dict:
        """Undelivered records per destination, for ``/healthz`` and the logs."""
        d = AuditDelivery
        failing = sa.func.sum(sa.case((d.attempts > 0, 1), else_=0))
        query = (
            sa.select(d.destination, sa.func.count(), sa.func.min(d.queued_at), failing)
            .where(d.state == PENDING)
            .group_by(d.destination)
        )
        # Before the counts: a row moved from the spool to the inbox meanwhile is counted
        # twice, never missed.
        handed = self.database.handed()  # reads' records not in the database yet
        with self.database.session() as session:
            if self.database.dialect == "postgresql":
                # One snapshot for every count below: under READ COMMITTED each statement
                # would see the indexer's latest commit, and rows it moved from the inbox
                # to the deliveries between two counts would be counted in neither.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            rows = {r[0]: r for r in session.execute(query)}
            errors = dict(
                session.execute(
                    sa.select(d.destination, sa.func.max(d.last_error))
                    .where(d.state == PENDING, d.last_error.is_not(None))
                    .group_by(d.destination)
                ).all()
            )
            failed = session.scalar(sa.select(sa.func.count()).where(d.state == FAILED)) or 0
            inbox = AuditInboxEntry.__table__
            unindexed = session.scalar(sa.select(sa.func.count()).select_from(inbox)) or 0
        now = utcnow()
        report: dict = {
            "pending": 0, "undeliverable": failed, "unindexed": unindexed, "destinations": {}
        }
        if handed is not None:
            report["handed"] = handed
        for key in sorted(set(rows) | set(self._keys)):
            _, count, oldest, failing_rows = rows.get(key, (key, 0, None, 0))
            if key in self._keys:
                count += unindexed  # each inbox row is owed to every destination
            report["pending"] += count
            report["destinations"][key] = {
                "pending": count,
                "oldest_age_seconds": None
                if oldest is None
                else round((now - oldest).total_seconds(), 1),
                "retrying": int(failing_rows or 0),
                "last_error": errors.get(key),
            }
        return report
