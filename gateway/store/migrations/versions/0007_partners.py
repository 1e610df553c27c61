"""partners: the CLI-managed partner directory

Revision ID: 0007_partners
Revises: 0006_repository
Create Date: 2026-11-25

One row per partner community added with ``ihe-gateway partners add``; partners in
gateway.toml are read from the file and never stored (gateway.partners.tables).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_partners"
down_revision = "0006_repository"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("home_community_id", sa.String(80), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("base_url", sa.String(1024), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("max_documents_per_retrieve", sa.Integer(), nullable=False),
        sa.Column("quirks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("home_community_id", name=op.f("pk_partners")),
    )


def downgrade() -> None:
    op.drop_table("partners")
