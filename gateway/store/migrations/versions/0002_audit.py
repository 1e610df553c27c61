"""audit: the audit trail (records, search terms) and the outbox of deliveries

Revision ID: 0002_audit
Revises: 0001
Create Date: 2025-01-02

Every record this node audited or received (gateway.audit.models), indexed by
time, transaction, patient and user; and one delivery row per local record per
audit repository, which the background sender works through.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now_column(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=True),
        sa.Column("action", sa.String(1), nullable=True),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("source_user", sa.String(1024), nullable=True),
        sa.Column("source_address", sa.String(256), nullable=True),
        sa.Column("destination_user", sa.String(1024), nullable=True),
        sa.Column("audit_source_id", sa.String(256), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        _now_column("stored_at"),
        sa.Column("peer_address", sa.String(256), nullable=True),
        sa.Column("peer_subject", sa.String(1024), nullable=True),
        sa.Column("syslog_hostname", sa.String(255), nullable=True),
        sa.Column("syslog_app_name", sa.String(48), nullable=True),
        sa.CheckConstraint(
            "origin IN ('local', 'received')", name=op.f("ck_audit_records_origin_known")
        ),
        sa.CheckConstraint(
            "length(record_id) = 64", name=op.f("ck_audit_records_record_id_length")
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_audit_records")),
    )
    op.create_index(op.f("ix_audit_records_event_time"), "audit_records", ["event_time"])
    op.create_index(op.f("ix_audit_records_event_type"), "audit_records", ["event_type"])

    op.create_table(
        "audit_record_terms",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.CheckConstraint(
            "kind IN ('patient', 'user')", name=op.f("ck_audit_record_terms_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["audit_records.record_id"],
            name=op.f("fk_audit_record_terms_record_id_audit_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record_id", "kind", "value", name=op.f("pk_audit_record_terms")),
    )
    op.create_index("ix_audit_record_terms_kind_value", "audit_record_terms", ["kind", "value"])

    op.create_table(
        "audit_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed')", name=op.f("ck_audit_deliveries_state_known")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["audit_records.record_id"],
            name=op.f("fk_audit_deliveries_record_id_audit_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_deliveries")),
        sa.UniqueConstraint(
            "record_id", "destination", name=op.f("uq_audit_deliveries_record_id_destination")
        ),
    )
    op.create_index(
        "ix_audit_deliveries_due", "audit_deliveries", ["state", "destination", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_audit_deliveries_due", table_name="audit_deliveries")
    op.drop_table("audit_deliveries")
    op.drop_index("ix_audit_record_terms_kind_value", table_name="audit_record_terms")
    op.drop_table("audit_record_terms")
    op.drop_index(op.f("ix_audit_records_event_type"), table_name="audit_records")
    op.drop_index(op.f("ix_audit_records_event_time"), table_name="audit_records")
    op.drop_table("audit_records")
