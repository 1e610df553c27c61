"""Row-level helpers of the SQL patient index: identifiers as SQL conditions, the readable
columns of a record, dialect-specific inserts."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.patients.models import ACTIVE, Patient
from gateway.patients.records import person_to_json
from profiles.hl7v3.datatypes import II
from profiles.pix.ports import PatientRecord, key_of


def insert_for(session: Session, table: type) -> sa.Insert:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def checked_id(ii: II) -> tuple[str, str]:
    if not ii.root or not ii.extension:
        raise ValueError("a patient identifier needs a domain (root) and a value (extension)")
    return ii.root, ii.extension


def any_id(root: sa.ColumnElement, extension: sa.ColumnElement,
            pairs: Iterable[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """(root, extension) is one of ``pairs`` (a row-value IN, as long as the list is)."""
    wanted = [tuple(p) for p in pairs]
    return sa.tuple_(root, extension).in_(wanted) if wanted else sa.false()


def other_keys(record: PatientRecord) -> set[tuple[str, str]]:
    found = {key_of(o.id) for o in record.person.other_ids if o.id.root and o.id.extension}
    found.discard(key_of(record.id))
    return found


def row_columns(record: PatientRecord) -> dict:
    """The readable columns of a record's row (the demographics themselves are JSON)."""
    person = record.person
    first = person.names[0] if person.names else None
    return {
        "root": record.id.root, "extension": record.id.extension, "status": ACTIVE,
        "family": (" ".join(first.family) or None) if first else None,
        "given": (" ".join(first.given) or None) if first else None,
        "birth_time": person.birth_time.value if person.birth_time else None,
        "gender": person.gender.code if person.gender else None,
        "demographics": person_to_json(person),
    }


def row_of(session: Session, ii: II, *, active: bool = True) -> Patient | None:
    """The record with id ``ii`` (only an active one unless ``active`` is False)."""
    if not ii.root or not ii.extension:
        return None
    query = sa.select(Patient).where(Patient.root == ii.root,
                                     Patient.extension == ii.extension)
    if active:
        query = query.where(Patient.status == ACTIVE)
    return session.scalars(query).first()


def id_of(row: Patient) -> II:
    return II(row.root, row.extension)
