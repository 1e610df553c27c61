"""Storing patient records in the SQL patient index: a feed's add or revision, an initial
load in bulk, and the cross-reference groups they join.

Linking: a record joins the group of every active record it names among its other
identifiers, and of every record that names it; groups that meet are unified (the
lowest group id is kept). These run inside the index's write session
(``SqlPatientIndex._write``), so a record, its other ids, blocking keys and links
commit together. ``accept_new_domains`` False refuses an id from a domain never
registered (``UnknownDomain``) instead of registering it.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.patients.models import (
    ACTIVE,
    MERGED,
    Patient,
    PatientDomain,
    PatientGroup,
    PatientKey,
    PatientOtherId,
)
from gateway.patients.rows import any_id, checked_id, insert_for, other_keys, row_columns, row_of
from gateway.store.models import utcnow
from profiles.pix.demographics import Demographics, blocking_keys
from profiles.pix.ports import PatientRecord, UnknownDomain, key_of


def store(session: Session, record: PatientRecord, *, accept_new_domains: bool
          ) -> tuple[Patient, bool]:
    """Add or revise one record (its other ids, blocking keys and links replaced);
    returns its row and whether it was new (or a retired id fed again)."""
    root, extension = checked_id(record.id)
    if not accept_new_domains and session.get(PatientDomain, root) is None:
        raise UnknownDomain(f"unknown patient identifier domain {root}")
    ensure_domain(session, root, record.id.assigning_authority_name)
    row = row_of(session, record.id, active=False)
    created = row is None or row.status == MERGED  # a retired id fed again starts afresh
    if created:
        group = PatientGroup(created_at=utcnow())
        session.add(group)
        session.flush()
        if row is None:
            row = Patient(root=root, extension=extension, group_id=group.id)
            session.add(row)
        row.group_id, row.status, row.merged_into_id = group.id, ACTIVE, None
    assert row is not None
    for column, value in row_columns(record).items():
        setattr(row, column, value)
    row.updated_at = utcnow()
    session.flush()
    person, others = record.person, other_keys(record)
    if accept_new_domains:
        for other_root in sorted({r for r, _ in others}):
            ensure_domain(session, other_root)
    session.execute(sa.delete(PatientOtherId).where(PatientOtherId.patient_id == row.id))
    session.execute(sa.delete(PatientKey).where(PatientKey.patient_id == row.id))
    if others:
        session.execute(sa.insert(PatientOtherId), [
            {"patient_id": row.id, "root": r, "extension": e} for r, e in sorted(others)])
    keys = blocking_keys(Demographics.of_person(person, [record.id]))
    if keys:
        session.execute(sa.insert(PatientKey),
                        [{"patient_id": row.id, "key": k} for k in sorted(keys)])
    link(session, row, others)
    return row, created


def store_all(session: Session, records: Iterable[PatientRecord], *,
              accept_new_domains: bool) -> int:
    """New ids inserted in bulk (group, row, other ids, keys); known ones one by one."""
    batch = list({key_of(r.id): r for r in records}.values())
    for record in batch:
        checked_id(record.id)
    known = {(r, e) for r, e in session.execute(sa.select(Patient.root, Patient.extension)
             .where(any_id(Patient.root, Patient.extension, [key_of(r.id) for r in batch])))}
    fresh = [r for r in batch if key_of(r.id) not in known]
    for record in batch:
        if key_of(record.id) in known:
            store(session, record, accept_new_domains=accept_new_domains)
    if not fresh:
        return len(batch)
    for root in sorted({r.id.root or "" for r in fresh}):
        if not accept_new_domains and session.get(PatientDomain, root) is None:
            raise UnknownDomain(f"unknown patient identifier domain {root}")
        ensure_domain(session, root)
    now = utcnow()
    groups = session.scalars(sa.insert(PatientGroup).returning(
        PatientGroup.id, sort_by_parameter_order=True), [{"created_at": now}] * len(fresh))
    rows = [row_columns(r) | {"group_id": g, "created_at": now, "updated_at": now}
            for r, g in zip(fresh, list(groups), strict=True)]
    ids = list(session.scalars(sa.insert(Patient).returning(
        Patient.id, sort_by_parameter_order=True), rows))
    others, keys = [], []
    for record, pk in zip(fresh, ids, strict=True):
        named = other_keys(record)
        others += [{"patient_id": pk, "root": r, "extension": e} for r, e in sorted(named)]
        keys += [{"patient_id": pk, "key": k} for k in sorted(
            blocking_keys(Demographics.of_person(record.person, [record.id])))]
        if accept_new_domains:
            for root in sorted({r for r, _ in named}):
                ensure_domain(session, root)
    if others:
        session.execute(sa.insert(PatientOtherId), others)
    if keys:
        session.execute(sa.insert(PatientKey), keys)
    # links: records naming others, and records another already names
    named_here = {key_of(r.id) for r in fresh}
    named_by_others = {(r, e) for r, e in session.execute(
        sa.select(PatientOtherId.root, PatientOtherId.extension).where(
            any_id(PatientOtherId.root, PatientOtherId.extension, named_here)))}
    for record, pk in zip(fresh, ids, strict=True):
        if other_keys(record) or key_of(record.id) in named_by_others:
            row = session.get(Patient, pk)
            assert row is not None
            link(session, row, other_keys(record))
    return len(batch)


def link(session: Session, row: Patient, others: set[tuple[str, str]]) -> None:
    """Unify ``row``'s group with those of the active records it names (``others``)
    and of those naming it."""
    named = any_id(Patient.root, Patient.extension, others)
    naming = sa.select(PatientOtherId.patient_id).where(
        PatientOtherId.root == row.root, PatientOtherId.extension == row.extension)
    linked = sa.select(Patient.group_id).where(
        Patient.status == ACTIVE, sa.or_(Patient.id.in_(naming), named))
    groups = set(session.scalars(linked)) | {row.group_id}
    if len(groups) > 1:
        keep = min(groups)
        session.execute(sa.update(Patient).where(Patient.group_id.in_(groups))
                        .values(group_id=keep))
        session.refresh(row)


def ensure_domain(session: Session, oid: str, name: str | None = None) -> None:
    """Register domain ``oid`` unless it is already known."""
    insert = insert_for(session, PatientDomain).values(oid=oid, name=name, created_at=utcnow())
    session.execute(insert.on_conflict_do_nothing(index_elements=["oid"]))
