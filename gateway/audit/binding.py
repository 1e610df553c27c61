"""How a request's audit record joins the commit of the data the request writes.

Issue 7 asks that each record be "written to a durable queue in the database
within the transaction's own commit". A request's audit (``RequestAudit``)
joins a session's transaction in one of two ways:

* explicitly: a port calls ``audit.bind(session)`` around its writes;
* by itself: while a request's handler runs on this thread (``CURRENT``, set
  by ``RequestAudit.serving``, which the SOAP pipeline wraps around the
  handler), any session transaction that *writes* (an INSERT, UPDATE or DELETE
  went through its connection, or its flush will write ORM changes) takes the
  record too. So no port has to remember to bind, and no data commit of a
  request leaves without its record. Sessions that only read take nothing.

Just before such a transaction commits, the request stages the record built
from its notes so far (``RequestAudit._before_commit``); once it has committed
the request knows the record is durable, and ``finish`` writes no second one.
A rollback forgets it all. One listener per event for all sessions and engines:
per-session listeners cost more to register than the audit row itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from profiles.atna.facts import AuditFacts

CURRENT: ContextVar[Any] = ContextVar("gateway_request_audit", default=None)
BOUND = "gateway.audit.bound"  # session.info: {id(audit): Bound} for its transaction
_CONNECTION = "gateway.audit.connection"  # session.info: the transaction's connection
_WROTE = "gateway.audit.wrote"  # Connection.info: a request wrote in this transaction
_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")


@dataclass(frozen=True)
class Written:
    """How much of a request's notes a data commit has carried as records."""

    record: bool = False
    feeds: int = 0  # patient feed events covered (a feed may note more after a commit)

    def after(self, noted: AuditFacts) -> Written:
        return Written(True, len(noted.feeds))

    def feeds_left(self, noted: AuditFacts) -> bool:
        return len(noted.feeds) > self.feeds

    def unwritten(self, noted: AuditFacts) -> AuditFacts:
        return replace(noted, feeds=noted.feeds[self.feeds :])


@dataclass
class Bound:
    """One request's audit in one session transaction."""

    audit: Any  # RequestAudit
    recorded: int = 0  # complete messages staged (``record``)
    written: Written | None = None  # the notes' record staged at commit
    guarded: bool = False  # the request's deferred replay tokens inserted here


def bound(session: Session, audit: Any) -> Bound:
    """``audit``'s entry in the session's current transaction (made on demand)."""
    entries = session.info.setdefault(BOUND, {})
    if id(audit) not in entries:
        entries[id(audit)] = Bound(audit)
    return entries[id(audit)]


@lru_cache(maxsize=512)  # a few hundred distinct statements; every request asks again
def _is_write(statement: str) -> bool:
    head = statement.lstrip()[:6].upper()
    if head.startswith(_WRITES):
        return True
    # A data-modifying CTE (WITH ... INSERT): rare; a crude look is enough.
    return head.startswith("WITH") and any(f" {w} " in statement.upper() for w in _WRITES)


def _writes(session: Session) -> bool:
    """The transaction wrote through its connection, or its flush (after this hook,
    inside the commit) will: ORM objects added, deleted or changed."""
    connection = session.info.get(_CONNECTION)
    if connection is not None and connection.info.get(_WROTE):
        return True
    return bool(session.new or session.deleted) or any(
        session.is_modified(o) for o in session.dirty
    )


@sa.event.listens_for(Engine, "before_cursor_execute")
def _note_write(conn: Connection, cursor, statement: str, parameters, context, many) -> None:
    if CURRENT.get() is not None and not conn.info.get(_WROTE) and _is_write(statement):
        conn.info[_WROTE] = True


@sa.event.listens_for(Engine, "commit")
@sa.event.listens_for(Engine, "rollback")
def _transaction_over(conn: Connection) -> None:
    conn.info.pop(_WROTE, None)


@sa.event.listens_for(Session, "after_begin")
def _began(session: Session, transaction, connection: Connection) -> None:
    session.info[_CONNECTION] = connection


@sa.event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    current = CURRENT.get()
    if current is not None and _writes(session):
        bound(session, current)  # this request writes data here: its record joins
    for entry in list(session.info.get(BOUND, {}).values()):
        entry.audit._before_commit(session, entry)


@sa.event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_CONNECTION, None)
    for entry in session.info.pop(BOUND, {}).values():
        entry.audit._after_commit(entry)


@sa.event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CONNECTION, None)
    session.info.pop(BOUND, None)


@contextmanager
def bound_to(audit: Any, session: Session) -> Iterator[None]:
    """``audit.bind(session)`` when there is a request audit that can bind (the gateway's
    ``RequestAudit``), else nothing: for ports that also run without one (CLI, tests)."""
    bind = getattr(audit, "bind", None)
    if bind is None:
        yield
        return
    with bind(session):
        yield
