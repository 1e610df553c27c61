"""``SqlRegistry``: the XDS.b registry on SQLAlchemy (SQLite or PostgreSQL).

Implements ``profiles.xds.ports.Registry``. A registration is one immediate
transaction (SQLite takes its write lock at BEGIN); on PostgreSQL it first takes a
transaction advisory lock per uniqueId it claims, so two concurrent submissions of
one uniqueId are checked one after the other. Objects are stored as the codec's
ebRIM XML beside indexed filter columns (``gateway.registry.models``); queries run
as SQL (``gateway.registry.queries``) and only the rows they name are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from lxml import etree
from sqlalchemy.orm import Session

from gateway.registry import queries
from gateway.registry.models import (
    AssociationRow,
    DocumentEntryAuthor,
    DocumentEntryCode,
    DocumentEntryReferenceId,
    DocumentEntryRow,
    FolderCode,
    FolderRow,
    SubmissionSetAuthor,
    SubmissionSetRow,
)
from gateway.store.db import Database
from profiles.errors import XDSTooManyResults
from profiles.xds import codes as c
from profiles.xds.codes import AssociationType, AvailabilityStatus
from profiles.xds.ebrim import parse_registry_object_list, registry_object_list_to_xml
from profiles.xds.metadata import (
    Code,
    DocumentEntry,
    Folder,
    ListMember,
    ObjectRef,
    RegistryObject,
    SubmissionSet,
)
from profiles.xds.ports import Registration
from profiles.xds.storedquery import ReturnType, StoredQuery
from profiles.xds.values import dtm_low, is_dtm

DEFAULT_MAX_RESULTS = 1000
_CHUNK = 500
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
_OPEN = f'<rim:RegistryObjectList xmlns:rim="{c.RIM}">'.encode()
_CLOSE = b"</rim:RegistryObjectList>"
_TABLES = (SubmissionSetRow, DocumentEntryRow, FolderRow, AssociationRow)  # answer order


def _time(value: str | None) -> str | None:
    return dtm_low(value) if value and is_dtm(value) else None


def stored_xml(obj: RegistryObject) -> bytes:
    """The object's ebRIM XML as stored; status and home live in columns, not here."""
    obj = replace(obj, home_community_id=None, availability_status=None)
    return etree.tostring(registry_object_list_to_xml([obj])[0])


def _codes(d: DocumentEntry) -> list[DocumentEntryCode]:
    pairs: dict[tuple[str, str, str], None] = {}
    single = (("class", d.class_code), ("type", d.type_code), ("practice", d.practice_setting_code),
              ("facility", d.healthcare_facility_type_code), ("format", d.format_code))
    many = [("event", x) for x in d.event_codes] + [
        ("confidentiality", x) for x in d.confidentiality_codes
    ]
    for kind, code in [*single, *many]:
        if isinstance(code, Code):
            pairs[(kind, code.code, code.scheme or "")] = None
    return [DocumentEntryCode(kind=k, code=v, scheme=s) for k, v, s in pairs]


def _persons(authors) -> list[str]:
    return list(dict.fromkeys(a.person for a in authors if a.person))


def to_row(obj: RegistryObject) -> Any:
    status = (obj.availability_status or AvailabilityStatus.APPROVED).value
    common = {"entry_uuid": obj.entry_uuid, "status": status, "xml": stored_xml(obj)}
    if isinstance(obj, DocumentEntry):
        return DocumentEntryRow(
            **common, logical_id=obj.logical_id or obj.entry_uuid, unique_id=obj.unique_id,
            patient_id=obj.patient_id, object_type=obj.object_type.value,
            creation_time=_time(obj.creation_time),
            service_start_time=_time(obj.service_start_time),
            service_stop_time=_time(obj.service_stop_time),
            codes=_codes(obj),
            authors=[DocumentEntryAuthor(person=p) for p in _persons(obj.authors)],
            reference_ids=[DocumentEntryReferenceId(reference_id=r)
                           for r in dict.fromkeys(obj.reference_ids)],
        )
    if isinstance(obj, SubmissionSet):
        ct = obj.content_type_code
        return SubmissionSetRow(
            **common, unique_id=obj.unique_id, patient_id=obj.patient_id, source_id=obj.source_id,
            submission_time=_time(obj.submission_time),
            content_type_code=ct.code if ct else None,
            content_type_scheme=ct.scheme if ct else None,
            authors=[SubmissionSetAuthor(person=p) for p in _persons(obj.authors)],
        )
    if isinstance(obj, Folder):
        pairs = dict.fromkeys((x.code, x.scheme or "") for x in obj.codes)
        return FolderRow(
            **common, logical_id=obj.logical_id or obj.entry_uuid, unique_id=obj.unique_id,
            patient_id=obj.patient_id, last_update_time=obj.last_update_time,
            codes=[FolderCode(code=k, scheme=s) for k, s in pairs],
        )
    return AssociationRow(**common, type=obj.type.value, source=obj.source, target=obj.target)


def load(rows: Sequence[Any]) -> list[RegistryObject]:
    """Models from stored rows (all of one table), with status (and lastUpdateTime) from columns."""
    if not rows:
        return []
    members = parse_registry_object_list(
        etree.fromstring(_OPEN + b"".join(r.xml for r in rows) + _CLOSE, _SAFE)
    )
    out = []
    for row, obj in zip(rows, members, strict=True):
        obj = replace(obj, availability_status=AvailabilityStatus(row.status))
        if isinstance(obj, Folder):
            obj = replace(obj, last_update_time=row.last_update_time)
        out.append(obj)
    return out


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def load_ids(session: Session, table: Any, ids: Sequence[int]) -> list[RegistryObject]:
    out: list[RegistryObject] = []
    for chunk in _chunks(ids):
        rows = session.scalars(sa.select(table).where(table.id.in_(chunk)).order_by(table.id))
        out += load(rows.all())
    return out


class SqlRegistryTransaction:
    """RegistryTransaction over one open Session.

    With ``patients_here`` (the patient index lives in this database) a patient id is
    checked inside this transaction, its row locked for share on PostgreSQL: a merge
    retiring it either commits first (the submission is refused, XDSUnknownPatientId)
    or waits for this one and then moves its documents too. Never both half-way.
    """

    def __init__(self, session: Session, known_patient, *, patients_here: bool = False) -> None:
        self.session, self._known_elsewhere = session, known_patient
        self.patients_here = patients_here

    def known_patient(self, patient_id: str) -> bool:
        if not self.patients_here:
            return bool(self._known_elsewhere(patient_id))
        from gateway.patients.models import ACTIVE, Patient
        from profiles.pix.ports import parse_cx

        try:
            ii = parse_cx(patient_id)
        except ValueError:
            return False
        query = sa.select(Patient.id).where(Patient.root == ii.root,
                                            Patient.extension == ii.extension,
                                            Patient.status == ACTIVE)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        return self.session.scalar(query) is not None

    def _first(self, table: Any, condition) -> RegistryObject | None:
        row = self.session.scalars(sa.select(table).where(condition).limit(1)).first()
        return load([row])[0] if row is not None else None

    def existing(self, entry_uuid: str) -> RegistryObject | None:
        for table in _TABLES:
            if (found := self._first(table, table.entry_uuid == entry_uuid)) is not None:
                return found
        return None

    def by_unique_id(self, unique_id: str) -> list[RegistryObject]:
        tables = (DocumentEntryRow, SubmissionSetRow, FolderRow)
        # One round trip to learn whether the uniqueId is taken at all (it rarely is).
        hits = self.session.execute(sa.union_all(*(
            sa.select(sa.literal(i).label("t"), t.id).where(t.unique_id == unique_id)
            for i, t in enumerate(tables)
        ))).all()
        out: list[RegistryObject] = []
        for i, table in enumerate(tables):
            if ids := [row_id for t, row_id in hits if t == i]:
                out += load_ids(self.session, table, sorted(ids))
        return out

    def folders_containing(self, document_uuid: str) -> list[str]:
        F, A = FolderRow, AssociationRow
        approved = AvailabilityStatus.APPROVED.value
        return list(self.session.scalars(
            sa.select(F.entry_uuid).join(A, A.source == F.entry_uuid).where(
                A.target == document_uuid, A.type == AssociationType.HAS_MEMBER.value,
                A.status == approved, F.status == approved,
            ).order_by(F.id)
        ))

    def addenda_and_transforms(self, document_uuid: str) -> list[str]:
        D, A = DocumentEntryRow, AssociationRow
        kinds = (AssociationType.APND.value, AssociationType.XFRM.value)
        return list(self.session.scalars(
            sa.select(D.entry_uuid).join(A, A.source == D.entry_uuid).where(
                A.target == document_uuid, A.type.in_(kinds),
                D.status == AvailabilityStatus.APPROVED.value,
            ).order_by(D.id)
        ))

    def save(self, registration: Registration) -> None:
        self.session.add_all(to_row(o) for o in registration.submission.registry_objects())
        self.session.flush()
        if registration.deprecate:
            self.session.execute(
                sa.update(DocumentEntryRow)
                .where(DocumentEntryRow.entry_uuid.in_(registration.deprecate))
                .values(status=AvailabilityStatus.DEPRECATED.value)
            )
        if registration.touched_folders:
            self.session.execute(
                sa.update(FolderRow)
                .where(FolderRow.entry_uuid.in_(registration.touched_folders))
                .values(last_update_time=registration.time)
            )


class SqlRegistry:
    """The registry of one database; safe to share between threads.

    ``patients``: the patient index (``known(II)``) deciding which patient ids are
    known; without one every patient is unknown. ``max_results``: a query matching
    more objects is answered XDSTooManyResults.
    """

    def __init__(self, database: Database, *, patients: Any = None,
                 max_results: int = DEFAULT_MAX_RESULTS) -> None:
        self.database, self.patients, self.max_results = database, patients, max_results

    def known_patient(self, patient_id: str) -> bool:
        if self.patients is None:
            return False
        from profiles.pix.ports import parse_cx

        try:
            return bool(self.patients.known(parse_cx(patient_id)))
        except ValueError:
            return False

    @contextmanager
    def transaction(self, *, lock: Iterable[str] = ()) -> Iterator[SqlRegistryTransaction]:
        with self.database.session(immediate=True) as session:
            if self.database.dialect == "postgresql":
                for key in sorted(set(lock)):
                    session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                    {"k": key})
            here = getattr(self.patients, "database", None) is self.database
            yield SqlRegistryTransaction(session, self.known_patient, patients_here=here)

    def run_query(self, query: StoredQuery) -> list[ListMember]:
        chosen = queries.selection(query)
        wanted = (chosen.submission_sets, chosen.documents, chosen.folders, chosen.associations)
        with self.database.session() as session:
            found: list[tuple[Any, list[tuple[int, str]]]] = []
            total = 0
            for table, conditions in zip(_TABLES, wanted, strict=True):
                if conditions is None:
                    continue
                rows = session.execute(
                    sa.select(table.id, table.entry_uuid).where(*conditions)
                    .order_by(table.id).limit(self.max_results + 1 - total)
                ).all()
                total += len(rows)
                if total > self.max_results:
                    raise XDSTooManyResults(
                        f"{query.name} matches more than {self.max_results} objects; "
                        "narrow the query", location=query.id)
                found.append((table, [tuple(r) for r in rows]))
            if query.return_type is ReturnType.OBJECT_REF:
                return [ObjectRef(uuid) for _, rows in found for _, uuid in rows]
            out: list[ListMember] = []
            for table, rows in found:
                out += load_ids(session, table, [i for i, _ in rows])
            return out

    def documents_of(self, patient_id: str, *, limit: int = 1000) -> list[DocumentEntry]:
        """A patient's DocumentEntries in registration order (for the operator CLI)."""
        D = DocumentEntryRow
        with self.database.session() as session:
            rows = session.scalars(
                sa.select(D).where(D.patient_id == patient_id).order_by(D.id).limit(limit)
            )
            return [o for o in load(rows.all()) if isinstance(o, DocumentEntry)]


__all__ = ["SqlRegistry", "SqlRegistryTransaction", "load", "stored_xml", "to_row"]
