"""The audit tables: the records this node knows, their search terms, and the outbox.

One table holds every record, whether this gateway audited it (``origin =
"local"``, written by ``AuditQueue.enqueue`` inside the transaction's own
commit) or an audit record repository received it over syslog (``origin =
"received"``). Sharing the table keeps one search for both uses and lets a
repository that shares the gateway's database store a record once: the primary
key is ``record_id``, the SHA-256 of the XML, so a record delivered twice (syslog
has no acknowledgement, the sender retries) is the same row.

Patients and users live in ``audit_record_terms`` (kind, value), indexed, so
"who saw this patient" is an index lookup, not a scan of XML.

``audit_inbox`` is where a request's records land first: one row per record,
its XML or its recipe (``profiles/atna/recipe.py``), in a table with no index
but its key, so the request pays one small INSERT and nothing else
(``bench/audit.py``). The sender (or a search)
moves inbox rows into ``audit_records`` with their terms and deliveries
(``AuditQueue.index_pending``); until then a row counts in the backlog.

``audit_deliveries`` is the outbox: one row per local record per configured
destination. A row stays ``pending`` until a sender delivers it; a sender
claims rows by pushing ``next_attempt_at`` one lease ahead and writing its token
in ``claimed_by``, so a sender that dies mid-batch only delays its rows by one
lease, and another picks them up.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, utcnow

ORIGIN_LOCAL = "local"
ORIGIN_RECEIVED = "received"
TERM_PATIENT = "patient"
TERM_USER = "user"
PENDING = "pending"
SENT = "sent"
FAILED = "failed"  # undeliverable to this destination for good (a datagram too large)

# 64-bit ids on PostgreSQL; SQLite needs INTEGER for its rowid alias (autoincrement).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class AuditEntry(Base):
    """One audit message: the XML exactly as sent or received, and its search fields."""

    __tablename__ = "audit_records"

    record_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
    event_time: Mapped[datetime] = mapped_column(index=True)
    event_id: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    action: Mapped[str | None] = mapped_column(sa.String(1))
    outcome: Mapped[int] = mapped_column(sa.SmallInteger)
    source_user: Mapped[str | None] = mapped_column(sa.String(1024))
    source_address: Mapped[str | None] = mapped_column(sa.String(256))
    destination_user: Mapped[str | None] = mapped_column(sa.String(1024))
    audit_source_id: Mapped[str] = mapped_column(sa.String(256))
    origin: Mapped[str] = mapped_column(sa.String(8))
    stored_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    # For received records: the sending node as the repository saw it.
    peer_address: Mapped[str | None] = mapped_column(sa.String(256))
    peer_subject: Mapped[str | None] = mapped_column(sa.String(1024))
    syslog_hostname: Mapped[str | None] = mapped_column(sa.String(255))
    syslog_app_name: Mapped[str | None] = mapped_column(sa.String(48))

    __table_args__ = (
        sa.CheckConstraint("origin IN ('local', 'received')", name="origin_known"),
        sa.CheckConstraint("length(record_id) = 64", name="record_id_length"),
    )


class AuditTerm(Base):
    """A searchable value of a record: a patient id (CX) or a user id."""

    __tablename__ = "audit_record_terms"

    record_id: Mapped[str] = mapped_column(
        sa.String(64),
        sa.ForeignKey("audit_records.record_id", ondelete="CASCADE"),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(1024), primary_key=True)

    __table_args__ = (
        sa.Index("ix_audit_record_terms_kind_value", "kind", "value"),
        sa.CheckConstraint("kind IN ('patient', 'user')", name="kind_known"),
    )


class AuditDelivery(Base):
    """One record owed to one destination (``tls://host:port`` or ``udp://host:port``)."""

    __tablename__ = "audit_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("audit_records.record_id", ondelete="CASCADE")
    )
    destination: Mapped[str] = mapped_column(sa.String(300))
    state: Mapped[str] = mapped_column(sa.String(8), default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(100))
    sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.UniqueConstraint("record_id", "destination"),
        sa.Index("ix_audit_deliveries_due", "state", "destination", "next_attempt_at"),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state_known"),
    )


class AuditInboxEntry(Base):
    """A local record not yet indexed: its XML, or the recipe that builds it exactly."""

    __tablename__ = "audit_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
