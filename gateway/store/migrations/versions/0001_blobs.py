"""blobs: the index of document blobs whose metadata has committed

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Documents are written to the blob store before their metadata commits; the
row here commits with the metadata. A blob file without a row is an orphan
that the sweep removes (gateway.store.blobindex). Later document tables
reference blobs.sha1.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_blobs_size_not_negative")),
        sa.CheckConstraint("length(sha1) = 40", name=op.f("ck_blobs_sha1_length")),
        sa.PrimaryKeyConstraint("sha1", name=op.f("pk_blobs")),
    )


def downgrade() -> None:
    op.drop_table("blobs")
