"""``SqlPatientIndex``: the patient index on SQLAlchemy (SQLite or PostgreSQL).

Implements ``profiles.pix.ports.PatientIndex``. Each call is one short
transaction; writes take SQLite's write lock at BEGIN (``immediate``) and are
retried once when a concurrent writer inserted the same identifier first.
A database that cannot answer (pool exhausted, lock wait expired, connection
lost) raises ``IndexBusy``, which XCPD answers with ResponderBusy.

Storing records and linking them into cross-reference groups is
``gateway.patients.feed``. A merge retires the obsolete records: their correlations,
other ids and registry documents move to the survivor, the records cross-referenced
to them join the survivor's group, and the request's audit records commit with it
(``gateway.patients.merging``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.audit.binding import bound_to
from gateway.partners.model import hcid
from gateway.patients import merging
from gateway.patients.feed import ensure_domain, link, store, store_all
from gateway.patients.models import (
    ACTIVE,
    MERGED,
    Patient,
    PatientCorrelation,
    PatientDomain,
    PatientKey,
    PatientMerge,
    PatientOtherId,
)
from gateway.patients.records import person_from_json
from gateway.patients.rows import any_id, checked_id, id_of, insert_for, row_of
from gateway.store.db import Database
from gateway.store.models import utcnow
from profiles.hl7v3.datatypes import II
from profiles.pix.demographics import Demographics, blocking_keys
from profiles.pix.ports import (
    Correlation,
    IndexBusy,
    MergeResult,
    PatientRecord,
    key_of,
)

log = logging.getLogger("gateway.patients")
T = TypeVar("T")


class SqlPatientIndex:
    """The patient index of one database; safe to share between threads."""

    def __init__(self, database: Database, *, accept_new_domains: bool = True) -> None:
        self.database = database
        # A feed from a domain never seen registers it; False keeps the domain list closed.
        self.accept_new_domains = accept_new_domains

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        try:
            with self.database.session(immediate=write) as session:
                yield session
        except (sa.exc.TimeoutError, sa.exc.OperationalError) as exc:
            log.warning("patient index unavailable: %s", type(exc).__name__)
            raise IndexBusy("the patient index cannot answer now") from exc

    def _write(self, work: Callable[[Session], T]) -> T:
        for attempt in (1, 2):
            try:
                with self._session(write=True) as session:
                    return work(session)
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- KnownPatients ---------------------------------------------------------------------

    def known(self, pid: II) -> bool:
        with self._session() as session:
            return row_of(session, pid) is not None

    def domains(self) -> set[str]:
        with self._session() as session:
            return set(session.scalars(sa.select(PatientDomain.oid)))

    def register_domain(self, oid: str, name: str | None = None) -> None:
        self._write(lambda s: ensure_domain(s, oid, name))

    # -- PatientFeed -----------------------------------------------------------------------

    def add(self, record: PatientRecord) -> bool:
        new = self.accept_new_domains
        return self._write(lambda s: store(s, record, accept_new_domains=new)[1])

    update = add  # a revision of an unknown id adds it, as a feed source expects

    def add_many(self, records: Iterable[PatientRecord], *, batch: int = 500) -> int:
        """Store records ``batch`` to a transaction (an initial load); returns how many."""
        count, pending, new = 0, [], self.accept_new_domains
        for record in records:
            pending.append(record)
            if len(pending) >= batch:
                count += self._write(lambda s, todo=tuple(pending): store_all(
                    s, todo, accept_new_domains=new))
                pending = []
        if pending:
            count += self._write(lambda s: store_all(s, pending, accept_new_domains=new))
        return count

    def merge(self, survivor: PatientRecord, obsolete: Iterable[II], *,
              source: str | None = None, audit: Any = None) -> MergeResult:
        """Retire each obsolete id into ``survivor`` (stored or updated from the message)."""
        return self.merge_all([(survivor, obsolete)], source=source, audit=audit)[0]

    def merge_all(self, merges: Sequence[tuple[PatientRecord, Iterable[II]]], *,
                  source: str | None = None, audit: Any = None) -> tuple[MergeResult, ...]:
        """Several merges (an A40 with several PID/MRG pairs) in one transaction, with the
        registry objects, correlations and cross-references of each obsolete id, and the
        request's audit records (``audit``: its AuditSink) when it can bind to a session."""
        pairs = [(s, tuple(o)) for s, o in merges]

        def work(session: Session) -> tuple[MergeResult, ...]:
            with bound_to(audit, session):  # the records commit with the merge
                return tuple(self._merge(session, s, o, source) for s, o in pairs)

        return self._write(work)

    def _merge(self, session: Session, survivor: PatientRecord, obsolete: Iterable[II],
               source: str | None) -> MergeResult:
        kept, _ = store(session, survivor, accept_new_domains=self.accept_new_domains)
        merged, unknown, total, objects = [], [], 0, merging.MovedObjects()
        for ii in obsolete:
            if key_of(ii) == key_of(survivor.id):
                continue
            row = row_of(session, ii)
            moved = 0
            if row is None:
                unknown.append(ii)
            else:
                moved = merging.retire(session, row, kept)
                merged.append(ii)
            if ii.root and ii.extension:
                objects += merging.move_documents(session, ii, survivor.id)
            total += moved
            session.add(PatientMerge(
                survivor_id=kept.id, obsolete_root=ii.root or "",
                obsolete_extension=ii.extension or "", obsolete_id=row.id if row else None,
                correlations_moved=moved, source=source, merged_at=utcnow()))
        if merged:
            link(session, kept, {(r, e) for r, e in session.execute(
                sa.select(PatientOtherId.root, PatientOtherId.extension)
                .where(PatientOtherId.patient_id == kept.id))})
        return MergeResult(survivor.id, tuple(merged), tuple(unknown), total, objects.total)

    # -- CrossReferences -------------------------------------------------------------------

    def _records(self, session: Session, rows: list[Patient]) -> list[PatientRecord]:
        ids = [r.id for r in rows]
        correlated: dict[int, list[II]] = {}
        if ids:
            for c in session.scalars(sa.select(PatientCorrelation)
                                     .where(PatientCorrelation.patient_id.in_(ids))
                                     .order_by(PatientCorrelation.id)):
                correlated.setdefault(c.patient_id, []).append(II(c.root, c.extension))
        return [PatientRecord(id_of(r), person_from_json(r.demographics), r.group_id,
                              tuple(correlated.get(r.id, ()))) for r in rows]

    def get(self, pid: II) -> PatientRecord | None:
        with self._session() as session:
            row = row_of(session, pid)
            return self._records(session, [row])[0] if row else None

    def merged_into(self, pid: II) -> II | None:
        """The active id a retired ``pid`` now lives on as (following merges), else None."""
        with self._session() as session:
            row = row_of(session, pid, active=False)
            seen = set()
            while row is not None and row.status == MERGED and row.id not in seen:
                seen.add(row.id)
                row = session.get(Patient, row.merged_into_id)
            return id_of(row) if row is not None and seen else None

    def cross_references(self, pid: II) -> list[II]:
        """The person's other active ids, then the other ids their sources listed."""
        root, extension = key_of(pid)
        with self._session() as session:
            return _ids_of_groups(session, sa.select(Patient.id).where(
                Patient.root == root, Patient.extension == extension), pid)

    def local_ids(self, pid: II) -> list[II]:
        """Our ids for the person ``pid`` names, in whatever domain it is: the group of the
        record with that id, of the records listing it as another id and of those a
        partner correlated it with (ITI-38's patient-id translation); then the other ids
        those records list. Without ``pid``. Indexed look-ups, one session."""
        root, extension = key_of(pid)
        direct = sa.select(Patient.id).where(Patient.root == root, Patient.extension == extension)
        listing = sa.select(PatientOtherId.patient_id).where(
            PatientOtherId.root == root, PatientOtherId.extension == extension)
        correlated = sa.select(PatientCorrelation.patient_id).where(
            PatientCorrelation.root == root, PatientCorrelation.extension == extension)
        with self._session() as session:
            return _ids_of_groups(session, sa.union(direct, listing, correlated), pid)

    # -- Candidates ------------------------------------------------------------------------

    def candidates(self, demographics: Demographics, *, limit: int = 200
                   ) -> list[PatientRecord]:
        keys = sorted(blocking_keys(demographics, query=True))
        pairs = [key_of(i) for i in demographics.ids if i.root and i.extension]
        with self._session() as session:
            hits = sa.select(PatientKey.patient_id).where(PatientKey.key.in_(keys)) \
                .group_by(PatientKey.patient_id) \
                .order_by(sa.func.count().desc(), PatientKey.patient_id).limit(limit)
            found = set(session.scalars(hits)) if keys else set()
            if pairs:
                found |= set(session.scalars(sa.select(PatientCorrelation.patient_id).where(
                    any_id(PatientCorrelation.root, PatientCorrelation.extension, pairs))))
            if not found:
                return []
            groups = sa.select(Patient.group_id).where(Patient.id.in_(found),
                                                       Patient.status == ACTIVE)
            rows = list(session.scalars(
                sa.select(Patient).where(Patient.group_id.in_(groups), Patient.status == ACTIVE)
                .order_by(Patient.group_id, Patient.id)))
            return self._records(session, rows)

    # -- Correlations ----------------------------------------------------------------------

    def record_correlation(self, ours: II, theirs: II, home_community_id: str) -> None:
        root, extension = checked_id(theirs)
        home_community_id = hcid(home_community_id)  # one form, whoever wrote it (v3: bare)

        def work(session: Session) -> None:
            row = row_of(session, ours)
            if row is None:
                raise LookupError("no active patient with that identifier")
            now = utcnow()
            session.execute(
                insert_for(session, PatientCorrelation).values(
                    patient_id=row.id, home_community_id=home_community_id, root=root,
                    extension=extension, created_at=now, updated_at=now)
                .on_conflict_do_update(
                    index_elements=["home_community_id", "root", "extension"],
                    set_={"patient_id": row.id, "updated_at": now}))

        self._write(work)

    def correlations(self, ours: II) -> list[Correlation]:
        with self._session() as session:
            row = row_of(session, ours)
            if row is None:
                return []
            found = session.scalars(sa.select(PatientCorrelation).where(
                PatientCorrelation.patient_id == row.id).order_by(PatientCorrelation.id))
            return [Correlation(id_of(row), II(c.root, c.extension), c.home_community_id)
                    for c in found]

    # -- merge history (patients show) -----------------------------------------------------

    def merge_history(self, pid: II) -> list[tuple[II, str | None, str, int]]:
        """The ids merged into ``pid``'s record, oldest first: (retired id, source,
        ISO time, correlations moved)."""
        with self._session() as session:
            row = row_of(session, pid)
            if row is None:
                return []
            found = session.scalars(sa.select(PatientMerge).where(
                PatientMerge.survivor_id == row.id).order_by(PatientMerge.id))
            return [(II(m.obsolete_root, m.obsolete_extension), m.source,
                     m.merged_at.isoformat(timespec="seconds"), m.correlations_moved or 0)
                    for m in found]


def _ids_of_groups(session: Session, patients: sa.Select | sa.CompoundSelect, pid: II
                   ) -> list[II]:
    """The active ids in the groups of ``patients`` (a select of Patient.id), then the
    other ids those records list (retired ones left out); without ``pid``."""
    groups = sa.select(Patient.group_id).where(Patient.id.in_(patients),
                                               Patient.status == ACTIVE)
    members = list(session.scalars(
        sa.select(Patient).where(Patient.group_id.in_(groups), Patient.status == ACTIVE)
        .order_by(Patient.id)))
    if not members:
        return []
    others = session.execute(
        sa.select(PatientOtherId.root, PatientOtherId.extension)
        .where(PatientOtherId.patient_id.in_([m.id for m in members]))
        .order_by(PatientOtherId.root, PatientOtherId.extension)).all()
    retired = {(r, e) for r, e in session.execute(
        sa.select(Patient.root, Patient.extension).where(
            Patient.status == MERGED, any_id(Patient.root, Patient.extension, others)))
    } if others else set()
    found: dict[tuple[str, str], II] = {}
    for ii in [*map(id_of, members), *(II(r, e) for r, e in others if (r, e) not in retired)]:
        found.setdefault(key_of(ii), ii)
    found.pop(key_of(pid), None)
    return list(found.values())
