"""registry: XDS.b DocumentEntries, SubmissionSets, Folders, Associations

Revision ID: 0005_registry
Revises: 0004_xua_replay
Create Date: 2025-01-05

Models and the reasons for each column: gateway.registry.models.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_registry"
down_revision = "0004_xua_replay"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UUID = sa.String(64)
STATUS = sa.String(64)
DTM = sa.String(14)


def _now() -> sa.Column:
    return sa.Column("registered_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                     nullable=False)


def _object(table: str, *columns: sa.Column) -> None:
    op.create_table(
        table,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("entry_uuid", UUID, nullable=False),
        *columns,
        sa.Column("xml", sa.LargeBinary(), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("entry_uuid", name=op.f(f"uq_{table}_entry_uuid")),
    )


def _child(table: str, owner_column: str, owner: str, *columns: str) -> None:
    op.create_table(
        table,
        sa.Column(owner_column, BigId, nullable=False),
        *(sa.Column(c, sa.String(16) if c == "kind" else sa.Text(), nullable=False)
          for c in columns),
        sa.ForeignKeyConstraint([owner_column], [f"{owner}.id"],
                                name=op.f(f"fk_{table}_{owner_column}_{owner}"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(owner_column, *columns, name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    _object(
        "document_entries",
        sa.Column("logical_id", UUID, nullable=False),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("object_type", UUID, nullable=False),
        sa.Column("creation_time", DTM, nullable=True),
        sa.Column("service_start_time", DTM, nullable=True),
        sa.Column("service_stop_time", DTM, nullable=True),
    )
    op.create_index(op.f("ix_document_entries_logical_id"), "document_entries", ["logical_id"])
    op.create_index(op.f("ix_document_entries_unique_id"), "document_entries", ["unique_id"])
    op.create_index("ix_document_entries_patient_id_status", "document_entries",
                    ["patient_id", "status"])
    _child("document_entry_codes", "entry_id", "document_entries", "kind", "code", "scheme")
    op.create_index("ix_document_entry_codes_kind_code_scheme", "document_entry_codes",
                    ["kind", "code", "scheme"])
    _child("document_entry_authors", "entry_id", "document_entries", "person")
    _child("document_entry_reference_ids", "entry_id", "document_entries", "reference_id")
    op.create_index(op.f("ix_document_entry_reference_ids_reference_id"),
                    "document_entry_reference_ids", ["reference_id"])

    _object(
        "submission_sets",
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("source_id", sa.String(128), nullable=True),
        sa.Column("submission_time", DTM, nullable=True),
        sa.Column("content_type_code", sa.Text(), nullable=True),
        sa.Column("content_type_scheme", sa.Text(), nullable=True),
    )
    op.create_index(op.f("ix_submission_sets_unique_id"), "submission_sets", ["unique_id"])
    op.create_index("ix_submission_sets_patient_id_status", "submission_sets",
                    ["patient_id", "status"])
    _child("submission_set_authors", "set_id", "submission_sets", "person")

    _object(
        "folders",
        sa.Column("logical_id", UUID, nullable=False),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("last_update_time", DTM, nullable=True),
    )
    op.create_index(op.f("ix_folders_logical_id"), "folders", ["logical_id"])
    op.create_index(op.f("ix_folders_unique_id"), "folders", ["unique_id"])
    op.create_index("ix_folders_patient_id_status", "folders", ["patient_id", "status"])
    _child("folder_codes", "folder_id", "folders", "code", "scheme")

    _object(
        "registry_associations",
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("source", UUID, nullable=False),
        sa.Column("target", UUID, nullable=False),
        sa.Column("status", STATUS, nullable=False),
    )
    op.create_index(op.f("ix_registry_associations_source"), "registry_associations", ["source"])
    op.create_index(op.f("ix_registry_associations_target"), "registry_associations", ["target"])


def downgrade() -> None:
    for table in (
        "registry_associations",
        "folder_codes",
        "folders",
        "submission_set_authors",
        "submission_sets",
        "document_entry_reference_ids",
        "document_entry_authors",
        "document_entry_codes",
        "document_entries",
    ):
        op.drop_table(table)
