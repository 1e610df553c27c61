"""The patient index tables (migration ``0003_patients``).

* ``patient_domains``: every assigning authority (patient identifier domain)
  the index has seen, so "unknown domain" stays a fact after merges;
* ``patient_groups``: one row per person; records linked across domains share it;
* ``patients``: one identifier in one domain (``root``, ``extension``), the
  demographics as fed (``demographics``, JSON, for answers) and a few columns
  for people reading the table. ``status`` is ``active`` or ``merged``; a
  merged record points at its survivor;
* ``patient_other_ids``: identifiers the source listed for the record (SSN,
  ids in other domains), indexed for look-ups and linking;
* ``patient_keys``: the blocking keys (``profiles.pix.demographics``) that
  find candidates for a demographic query with one indexed ``IN``;
* ``patient_merges``: merge history (who was retired into whom, when, by what);
* ``patient_correlations``: a partner community's id for one of our records.
  One partner id names one of our records (unique per community and id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, utcnow

ROOT = sa.String(64)  # an OID
EXTENSION = sa.String(256)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE, MERGED = "active", "merged"


class PatientDomain(Base):
    __tablename__ = "patient_domains"

    oid: Mapped[str] = mapped_column(ROOT, primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())


class PatientGroup(Base):
    __tablename__ = "patient_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    root: Mapped[str] = mapped_column(ROOT, sa.ForeignKey("patient_domains.oid"))
    extension: Mapped[str] = mapped_column(EXTENSION)
    group_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("patient_groups.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(8), default=ACTIVE)
    merged_into_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("patients.id"))
    family: Mapped[str | None] = mapped_column(sa.String(256))
    given: Mapped[str | None] = mapped_column(sa.String(256))
    birth_time: Mapped[str | None] = mapped_column(sa.String(32))
    gender: Mapped[str | None] = mapped_column(sa.String(8))
    demographics: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    __table_args__ = (
        sa.UniqueConstraint("root", "extension"),
        sa.CheckConstraint("status IN ('active', 'merged')", name="status_known"),
    )


class PatientOtherId(Base):
    __tablename__ = "patient_other_ids"

    patient_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    root: Mapped[str] = mapped_column(ROOT, primary_key=True)
    extension: Mapped[str] = mapped_column(EXTENSION, primary_key=True)

    __table_args__ = (sa.Index("ix_patient_other_ids_root_extension", "root", "extension"),)


class PatientKey(Base):
    __tablename__ = "patient_keys"

    patient_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(sa.String(340), primary_key=True)

    __table_args__ = (sa.Index("ix_patient_keys_key", "key"),)


class PatientMerge(Base):
    __tablename__ = "patient_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("patients.id"), index=True)
    obsolete_root: Mapped[str] = mapped_column(ROOT)
    obsolete_extension: Mapped[str] = mapped_column(EXTENSION)
    obsolete_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("patients.id"))
    correlations_moved: Mapped[int] = mapped_column(sa.Integer, default=0)
    source: Mapped[str | None] = mapped_column(sa.String(32))  # e.g. ITI-44, ITI-8, cli
    merged_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())


class PatientCorrelation(Base):
    __tablename__ = "patient_correlations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("patients.id"), index=True)
    home_community_id: Mapped[str] = mapped_column(ROOT)
    root: Mapped[str] = mapped_column(ROOT)
    extension: Mapped[str] = mapped_column(EXTENSION)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    __table_args__ = (
        sa.UniqueConstraint("home_community_id", "root", "extension"),
        sa.Index("ix_patient_correlations_root_extension", "root", "extension"),
    )
