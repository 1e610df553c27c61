"""patients: the patient index (domains, cross-reference groups, records, keys, merges,
correlations)

Revision ID: 0003_patients
Revises: 0002_audit
Create Date: 2025-01-03

Models and the reasons for each table: gateway.patients.models.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_patients"
down_revision = "0002_audit"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROOT = sa.String(64)
EXTENSION = sa.String(256)


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _patient_fk(name: str, table: str, *, nullable: bool = False, cascade: bool = False):
    return sa.Column(name, BigId, nullable=nullable), sa.ForeignKeyConstraint(
        [name], ["patients.id"], name=op.f(f"fk_{table}_{name}_patients"),
        ondelete="CASCADE" if cascade else None,
    )


def upgrade() -> None:
    op.create_table(
        "patient_domains",
        sa.Column("oid", ROOT, nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        _now("created_at"),
        sa.PrimaryKeyConstraint("oid", name=op.f("pk_patient_domains")),
    )
    op.create_table(
        "patient_groups",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_groups")),
    )
    op.create_table(
        "patients",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("root", ROOT, nullable=False),
        sa.Column("extension", EXTENSION, nullable=False),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("merged_into_id", BigId, nullable=True),
        sa.Column("family", sa.String(256), nullable=True),
        sa.Column("given", sa.String(256), nullable=True),
        sa.Column("birth_time", sa.String(32), nullable=True),
        sa.Column("gender", sa.String(8), nullable=True),
        sa.Column("demographics", sa.JSON(), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint("status IN ('active', 'merged')", name=op.f("ck_patients_status_known")),
        sa.ForeignKeyConstraint(["root"], ["patient_domains.oid"],
                                name=op.f("fk_patients_root_patient_domains")),
        sa.ForeignKeyConstraint(["group_id"], ["patient_groups.id"],
                                name=op.f("fk_patients_group_id_patient_groups")),
        sa.ForeignKeyConstraint(["merged_into_id"], ["patients.id"],
                                name=op.f("fk_patients_merged_into_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("root", "extension", name=op.f("uq_patients_root_extension")),
    )
    op.create_index(op.f("ix_patients_group_id"), "patients", ["group_id"])

    column, fk = _patient_fk("patient_id", "patient_other_ids", cascade=True)
    op.create_table(
        "patient_other_ids",
        column,
        sa.Column("root", ROOT, nullable=False),
        sa.Column("extension", EXTENSION, nullable=False),
        fk,
        sa.PrimaryKeyConstraint("patient_id", "root", "extension",
                                name=op.f("pk_patient_other_ids")),
    )
    op.create_index("ix_patient_other_ids_root_extension", "patient_other_ids",
                    ["root", "extension"])

    column, fk = _patient_fk("patient_id", "patient_keys", cascade=True)
    op.create_table(
        "patient_keys",
        column,
        sa.Column("key", sa.String(340), nullable=False),
        fk,
        sa.PrimaryKeyConstraint("patient_id", "key", name=op.f("pk_patient_keys")),
    )
    op.create_index("ix_patient_keys_key", "patient_keys", ["key"])

    survivor, survivor_fk = _patient_fk("survivor_id", "patient_merges")
    obsolete, obsolete_fk = _patient_fk("obsolete_id", "patient_merges", nullable=True)
    op.create_table(
        "patient_merges",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        survivor,
        sa.Column("obsolete_root", ROOT, nullable=False),
        sa.Column("obsolete_extension", EXTENSION, nullable=False),
        obsolete,
        sa.Column("correlations_moved", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=True),
        _now("merged_at"),
        survivor_fk,
        obsolete_fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_merges")),
    )
    op.create_index(op.f("ix_patient_merges_survivor_id"), "patient_merges", ["survivor_id"])

    column, fk = _patient_fk("patient_id", "patient_correlations")
    op.create_table(
        "patient_correlations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        column,
        sa.Column("home_community_id", ROOT, nullable=False),
        sa.Column("root", ROOT, nullable=False),
        sa.Column("extension", EXTENSION, nullable=False),
        _now("created_at"),
        _now("updated_at"),
        fk,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_correlations")),
        sa.UniqueConstraint("home_community_id", "root", "extension",
                            name=op.f("uq_patient_correlations_home_community_id_root_extension")),
    )
    op.create_index(op.f("ix_patient_correlations_patient_id"), "patient_correlations",
                    ["patient_id"])
    op.create_index("ix_patient_correlations_root_extension", "patient_correlations",
                    ["root", "extension"])


def downgrade() -> None:
    op.drop_table("patient_correlations")
    op.drop_table("patient_merges")
    op.drop_table("patient_keys")
    op.drop_table("patient_other_ids")
    op.drop_table("patients")
    op.drop_table("patient_groups")
    op.drop_table("patient_domains")
