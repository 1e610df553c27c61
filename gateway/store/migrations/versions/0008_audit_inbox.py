"""audit inbox: a request's audit records, one small row each, indexed later

Revision ID: 0008_audit_inbox
Revises: 0007_partners
Create Date: 2026-11-25

The request path writes each record's XML here (one INSERT into a table with no
secondary index) inside the transaction's own commit; the background sender,
or a search, moves rows into audit_records with their search terms and
deliveries (gateway.audit.queue.AuditQueue.index_pending).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_audit_inbox"
down_revision = "0007_partners"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_inbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_inbox")),
    )


def downgrade() -> None:
    op.drop_table("audit_inbox")
