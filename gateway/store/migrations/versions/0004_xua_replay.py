"""xua_replay: the XUA replay cache shared by every worker

Revision ID: 0004_xua_replay
Revises: 0003_patients
Create Date: 2025-01-04

One row per accepted assertion ID (or Timestamp signature, when a partner may
reuse an assertion) until it expires; a second request with the same token is
refused as a replay (gateway.security.replay).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_xua_replay"
down_revision = "0003_patients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xua_replay_tokens",
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_xua_replay_tokens")),
    )
    op.create_index(
        op.f("ix_xua_replay_tokens_expires_at"), "xua_replay_tokens", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_xua_replay_tokens_expires_at"), table_name="xua_replay_tokens")
    op.drop_table("xua_replay_tokens")
