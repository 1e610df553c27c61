"""repository_documents: the documents the XDS.b repository holds

Revision ID: 0006_repository
Revises: 0005_registry
Create Date: 2026-11-25

A document uniqueId -> its blob (blobs.sha1), size, mimeType and the
repositoryUniqueId it was stored under (gateway.repository.models).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_repository"
down_revision = "0005_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repository_documents",
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("repository_unique_id", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_repository_documents_size_not_negative")),
        sa.ForeignKeyConstraint(
            ["sha1"], ["blobs.sha1"], name=op.f("fk_repository_documents_sha1_blobs")
        ),
        sa.PrimaryKeyConstraint("unique_id", name=op.f("pk_repository_documents")),
    )
    op.create_index(op.f("ix_repository_documents_sha1"), "repository_documents", ["sha1"])


def downgrade() -> None:
    op.drop_index(op.f("ix_repository_documents_sha1"), table_name="repository_documents")
    op.drop_table("repository_documents")
