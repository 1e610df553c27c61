"""Tables, as SQLAlchemy 2 typed declarative models.

Conventions for every table added later (registry, patients, audit queue...):
- table names are plural snake_case nouns; each table arrives with a new
  migration in ``migrations/versions/`` (a test compares these models with the
  migrated schema, so a model without its migration fails);
- constraints are named by ``NAMING_CONVENTION``, so migrations can drop or
  alter them by name on both SQLite and PostgreSQL;
- timestamps are ``datetime`` columns holding aware UTC values (``UTCDateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on both databases.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC and made aware again when read. A naive value is refused
    on the way in: it would be ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Blob(Base):
    """A document blob whose metadata has committed: the committed half of the blob store.

    Documents reach the disk (``FileBlobStore``) before their metadata commits;
    the repository inserts this row in the same transaction as the metadata that
    points at it (later tables hold a foreign key to ``blobs.sha1``). A file
    with no row here is an orphan of a crash or a failed submission, and the
    sweep (``gateway.store.blobindex.sweep_orphans``) removes it. ``size`` is
    what the repository measured; a second submission of the same hash with
    another size is refused.
    """

    __tablename__ = "blobs"

    sha1: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    __table_args__ = (
        sa.CheckConstraint("size >= 0", name="size_not_negative"),
        sa.CheckConstraint("length(sha1) = 40", name="sha1_length"),
    )


# Every module that declares tables on Base. Alembic's env.py and the schema check
# import them all, so the metadata compared with the migrated database is complete.
MODEL_MODULES: tuple[str, ...] = (
    "gateway.audit.models",
    "gateway.registry.models",
    "gateway.repository.models",
    "gateway.patients.models",
    "gateway.security.replay",
    "gateway.partners.tables",
)


def import_all_models() -> None:
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
