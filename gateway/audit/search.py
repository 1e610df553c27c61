"""Reading the audit trail: the security officer's search and export.

Answers "who saw this patient's records, when, from where" from the local
store: on a gateway, the records it audited itself (its queue keeps them after
delivery); on an audit record repository, what it received. Patient and user
filters go through the indexed ``audit_record_terms``. A search first indexes
what is still in the inbox (``AuditQueue.index_all``), so it finds every
committed record, indexed by the sender yet or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.audit.models import TERM_PATIENT, TERM_USER, AuditEntry, AuditTerm
from gateway.audit.queue import AuditQueue
from gateway.store.db import Database
from profiles.atna.codes import EventId, EventType

log = logging.getLogger("gateway.audit")
OUTCOMES = {0: "success", 4: "minor failure", 8: "serious failure", 12: "major failure"}
EVENT_NAMES = {
    cv.code: cv.original_text
    for kind in (EventId, EventType)
    for cv in vars(kind).values()
    if hasattr(cv, "original_text")
}


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditQuery:
    """Search criteria; every one given must match (AND)."""

    patient: str | None = None  # a CX id, or just its ID part (matches any assigning authority)
    since: datetime | None = None  # event time >= since
    until: datetime | None = None  # event time < until
    event: str | None = None  # "ITI-38", or an EventID / EventTypeCode ("110112", "110120")
    user: str | None = None  # any part of a requesting user's id, case-insensitive
    outcome: str | None = None  # "success" | "failure"
    limit: int | None = None


@dataclass
class Found:
    """One record with its patients and users, as search and export show them."""

    entry: AuditEntry
    patients: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        e = self.entry
        return {
            "record_id": e.record_id,
            "event_time": e.event_time.isoformat(),
            "event_id": e.event_id,
            "event_type": e.event_type,
            "event_name": event_name(e),
            "action": e.action,
            "outcome": e.outcome,
            "outcome_text": OUTCOMES.get(e.outcome, str(e.outcome)),
            "users": self.users,
            "patients": self.patients,
            "source_user": e.source_user,
            "source_address": e.source_address,
            "destination_user": e.destination_user,
            "audit_source_id": e.audit_source_id,
            "origin": e.origin,
            "stored_at": e.stored_at.isoformat() if e.stored_at else None,
            "peer_address": e.peer_address,
            "peer_subject": e.peer_subject,
            "xml": e.xml.decode("utf-8", errors="replace"),
        }


def event_name(entry: AuditEntry) -> str:
    """``ITI-38`` for a transaction, else the DICOM name of the event type or id."""
    if entry.event_type and entry.event_type.startswith("ITI-"):
        return entry.event_type
    code = entry.event_type or entry.event_id
    return EVENT_NAMES.get(code, code)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _term(kind: str, condition) -> sa.ColumnElement[bool]:
    t = AuditTerm
    return sa.exists().where(t.record_id == AuditEntry.record_id, t.kind == kind, condition)


def statement(query: AuditQuery) -> sa.Select:
    e = AuditEntry
    stmt = sa.select(e)
    if query.patient:
        p = query.patient.strip()
        cond = AuditTerm.value == p
        if "^" not in p:
            cond = sa.or_(cond, AuditTerm.value.like(_escape_like(p) + "^%", escape="\\"))
        stmt = stmt.where(_term(TERM_PATIENT, cond))
    if query.user:
        pattern = "%" + _escape_like(query.user.strip().lower()) + "%"
        stmt = stmt.where(
            _term(TERM_USER, sa.func.lower(AuditTerm.value).like(pattern, escape="\\"))
        )
    if query.since:
        stmt = stmt.where(e.event_time >= query.since)
    if query.until:
        stmt = stmt.where(e.event_time < query.until)
    if query.event:
        stmt = stmt.where(sa.or_(e.event_type == query.event, e.event_id == query.event))
    if query.outcome == "success":
        stmt = stmt.where(e.outcome == 0)
    elif query.outcome == "failure":
        stmt = stmt.where(e.outcome != 0)
    elif query.outcome is not None:
        raise ValueError("outcome must be 'success' or 'failure'")
    stmt = stmt.order_by(e.event_time, e.record_id)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return stmt


def _with_terms(session, entries: list[AuditEntry]) -> list[Found]:
    found = {e.record_id: Found(e) for e in entries}
    if found:
        terms = session.execute(
            sa.select(AuditTerm.record_id, AuditTerm.kind, AuditTerm.value)
            .where(AuditTerm.record_id.in_(list(found)))
            .order_by(AuditTerm.value)
        )
        for record_id, kind, value in terms:
            target = found[record_id]
            (target.patients if kind == TERM_PATIENT else target.users).append(value)
    return list(found.values())


def search(database: Database, query: AuditQuery, *, chunk: int = 500) -> Iterator[Found]:
    """Matching records in event-time order, read ``chunk`` at a time (export streams)."""
    try:
        AuditQueue(database).index_all()
    except sa.exc.SQLAlchemyError as exc:  # a read-only account, say: say what is missing
        log.warning("audit: the inbox could not be indexed (%s); records not indexed yet "
                    "are not in this search", type(exc).__name__)
    with database.session() as session:
        result = session.execute(statement(query).execution_options(yield_per=chunk))
        for part in result.scalars().partitions(chunk):
            yield from _with_terms(session, list(part))


def _cell(value: str | None, width: int) -> str:
    text = value or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


COLUMNS = (
    ("TIME (UTC)", 19),
    ("EVENT", 18),
    ("ACT", 3),
    ("OUTCOME", 15),
    ("USER", 24),
    ("FROM", 18),
    ("PATIENT", 30),
    ("REPORTED BY", 22),
)


def table_lines(rows: Iterator[Found]) -> Iterator[str]:
    """A fixed-width table, one line per record, for a terminal."""
    yield "  ".join(name.ljust(width) for name, width in COLUMNS).rstrip()
    for f in rows:
        e = f.entry
        cells = (
            e.event_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            event_name(e),
            e.action,
            OUTCOMES.get(e.outcome, str(e.outcome)),
            ", ".join(f.users),
            e.source_address,
            ", ".join(f.patients),
            e.audit_source_id,
        )
        yield "  ".join(
            _cell(c, w).ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)
        ).rstrip()
