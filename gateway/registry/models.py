"""The XDS.b registry's tables (migration 0005_registry).

Each registry object is one row holding its ebRIM XML (``xml``: exactly what the
codec wrote, so unknown slots and classifications come back in LeafClass
answers) and, beside it, the columns every stored query filters on, indexed so a
query runs in the database: patient id with status, uniqueId, logicalId, times as
sortable 14-digit strings (``values.dtm_low``). Multi-valued attributes live in
child tables: DocumentEntry codes (one table, ``kind`` says which attribute),
authorPerson, referenceIdList, Folder codeList. The status column, not the XML,
is the truth about availabilityStatus (deprecation changes only the column), and
likewise Folder ``last_update_time``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.models import Base, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UUID = sa.String(64)
STATUS = sa.String(64)
DTM = sa.String(14)


def _id() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def _owner(table: str) -> Mapped[int]:
    return mapped_column(BigId, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), primary_key=True)


class DocumentEntryRow(Base):
    __tablename__ = "document_entries"

    id: Mapped[int] = _id()
    entry_uuid: Mapped[str] = mapped_column(UUID, unique=True)
    logical_id: Mapped[str] = mapped_column(UUID, index=True)
    unique_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    patient_id: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(STATUS)
    object_type: Mapped[str] = mapped_column(UUID)
    creation_time: Mapped[str | None] = mapped_column(DTM)
    service_start_time: Mapped[str | None] = mapped_column(DTM)
    service_stop_time: Mapped[str | None] = mapped_column(DTM)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    codes: Mapped[list[DocumentEntryCode]] = relationship(cascade="all, delete-orphan")
    authors: Mapped[list[DocumentEntryAuthor]] = relationship(cascade="all, delete-orphan")
    reference_ids: Mapped[list[DocumentEntryReferenceId]] = relationship(
        cascade="all, delete-orphan"
    )

    __table_args__ = (
        sa.Index("ix_document_entries_patient_id_status", "patient_id", "status"),
    )


class DocumentEntryCode(Base):
    """classCode, typeCode, practiceSettingCode, healthcareFacilityTypeCode,
    eventCodeList, confidentialityCode and formatCode (``kind``: class, type, ...)."""

    __tablename__ = "document_entry_codes"

    entry_id: Mapped[int] = _owner("document_entries")
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    code: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    scheme: Mapped[str] = mapped_column(sa.Text, primary_key=True)

    __table_args__ = (
        sa.Index("ix_document_entry_codes_kind_code_scheme", "kind", "code", "scheme"),
    )


class DocumentEntryAuthor(Base):
    __tablename__ = "document_entry_authors"

    entry_id: Mapped[int] = _owner("document_entries")
    person: Mapped[str] = mapped_column(sa.Text, primary_key=True)


class DocumentEntryReferenceId(Base):
    __tablename__ = "document_entry_reference_ids"

    entry_id: Mapped[int] = _owner("document_entries")
    reference_id: Mapped[str] = mapped_column(sa.Text, primary_key=True, index=True)


class SubmissionSetRow(Base):
    __tablename__ = "submission_sets"

    id: Mapped[int] = _id()
    entry_uuid: Mapped[str] = mapped_column(UUID, unique=True)
    unique_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    patient_id: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(STATUS)
    source_id: Mapped[str | None] = mapped_column(sa.String(128))
    submission_time: Mapped[str | None] = mapped_column(DTM)
    content_type_code: Mapped[str | None] = mapped_column(sa.Text)
    content_type_scheme: Mapped[str | None] = mapped_column(sa.Text)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    authors: Mapped[list[SubmissionSetAuthor]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (
        sa.Index("ix_submission_sets_patient_id_status", "patient_id", "status"),
    )


class SubmissionSetAuthor(Base):
    __tablename__ = "submission_set_authors"

    set_id: Mapped[int] = _owner("submission_sets")
    person: Mapped[str] = mapped_column(sa.Text, primary_key=True)


class FolderRow(Base):
    __tablename__ = "folders"

    id: Mapped[int] = _id()
    entry_uuid: Mapped[str] = mapped_column(UUID, unique=True)
    logical_id: Mapped[str] = mapped_column(UUID, index=True)
    unique_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    patient_id: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(STATUS)
    last_update_time: Mapped[str | None] = mapped_column(DTM)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    codes: Mapped[list[FolderCode]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (sa.Index("ix_folders_patient_id_status", "patient_id", "status"),)


class FolderCode(Base):
    __tablename__ = "folder_codes"

    folder_id: Mapped[int] = _owner("folders")
    code: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    scheme: Mapped[str] = mapped_column(sa.Text, primary_key=True)


class AssociationRow(Base):
    """An Association; ``source``/``target`` are entryUUIDs of any registry object."""

    __tablename__ = "registry_associations"

    id: Mapped[int] = _id()
    entry_uuid: Mapped[str] = mapped_column(UUID, unique=True)
    type: Mapped[str] = mapped_column(sa.String(128))
    source: Mapped[str] = mapped_column(UUID, index=True)
    target: Mapped[str] = mapped_column(UUID, index=True)
    status: Mapped[str] = mapped_column(STATUS)
    xml: Mapped[bytes] = mapped_column(sa.LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
