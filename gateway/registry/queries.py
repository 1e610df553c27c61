"""The ITI-18 stored queries as SQL (ITI TF-2a 3.18.4.1.2.3.7).

``selection(query)`` turns a checked StoredQuery into one SELECT of row ids per
table; the store runs them with a limit and loads only the rows they name. Every
value reaches the database as a bound parameter. Semantics:

- code parameters: OR among a Slot's codes, AND across repeated Slots;
- ``…From`` is inclusive, ``…To`` exclusive, both compared as 14-digit times;
- authorPerson values are LIKE patterns (``%`` and ``_`` wildcards), OR;
- ``$XDSDocumentEntryType`` absent means Stable entries only;
- GetAll, GetSubmissionSetAndContents and GetFolderAndContents return the
  Associations linking the objects they return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement, Select

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
from profiles.xds.codes import AssociationType, DocumentEntryType
from profiles.xds.storedquery import (
    DE,
    DOCUMENT_CODE_PARAMS,
    FO,
    SS,
    QueryName,
    StoredQuery,
)
from profiles.xds.values import dtm_low

D, S, F, A = DocumentEntryRow, SubmissionSetRow, FolderRow, AssociationRow
HAS_MEMBER = AssociationType.HAS_MEMBER.value
Conditions = list[ColumnElement[bool]]


@dataclass
class Selection:
    """Conditions per table (None: the query returns nothing of that kind)."""

    submission_sets: Conditions | None = None
    documents: Conditions | None = None
    folders: Conditions | None = None
    associations: Conditions | None = None


def _uuids(table, conditions: Conditions) -> Select:
    return sa.select(table.entry_uuid).where(*conditions)


def _time(column, q: StoredQuery, name: str) -> Conditions:
    out: Conditions = []
    if (low := q.one(name + "From")) is not None:
        out.append(column >= dtm_low(low))
    if (high := q.one(name + "To")) is not None:
        out.append(column < dtm_low(high))
    return out


def _has_code(kind: str, group: tuple) -> ColumnElement[bool]:
    C = DocumentEntryCode
    return sa.exists().where(
        C.entry_id == D.id,
        C.kind == kind,
        sa.or_(*(sa.and_(C.code == code, C.scheme == scheme) for code, scheme in group)),
    )


def _like_any(column, patterns) -> ColumnElement[bool]:
    return sa.or_(*(column.like(p) for p in patterns))


def _document_filters(q: StoredQuery, *, patient: str | None, status: str | None) -> Conditions:
    out: Conditions = []
    if patient is not None:
        out.append(D.patient_id == q.one(patient))
    if status is not None:
        out.append(D.status.in_(q.values(status)))
    out.append(D.object_type.in_(q.values(DE + "Type") or (DocumentEntryType.STABLE.value,)))
    for param, kind in DOCUMENT_CODE_PARAMS.items():
        out.extend(_has_code(kind, group) for group in q.groups(param))
    if authors := q.values(DE + "AuthorPerson"):
        Au = DocumentEntryAuthor
        out.append(sa.exists().where(Au.entry_id == D.id, _like_any(Au.person, authors)))
    for group in q.groups(DE + "ReferenceIdList"):
        Ref = DocumentEntryReferenceId
        out.append(sa.exists().where(Ref.entry_id == D.id, Ref.reference_id.in_(group)))
    out += _time(D.creation_time, q, DE + "CreationTime")
    out += _time(D.service_start_time, q, DE + "ServiceStartTime")
    out += _time(D.service_stop_time, q, DE + "ServiceStopTime")
    return out


def _content_filters(q: StoredQuery) -> Conditions:
    """FormatCode, ConfidentialityCode and Type on the DocumentEntries of a package."""
    return _document_filters(q, patient=None, status=None)


def _by_id(table, q: StoredQuery, uuid: str, unique_id: str, logical_id: str = "") -> Conditions:
    if q.has(uuid):
        return [table.entry_uuid.in_(q.values(uuid))]
    if q.has(unique_id):
        return [table.unique_id.in_(q.values(unique_id))]
    return [table.logical_id.in_(q.values(logical_id))]


def _find_documents(q: StoredQuery) -> Selection:
    return Selection(documents=_document_filters(q, patient=DE + "PatientId", status=DE + "Status"))


def _find_submission_sets(q: StoredQuery) -> Selection:
    out: Conditions = [
        S.patient_id == q.one(SS + "PatientId"), S.status.in_(q.values(SS + "Status"))
    ]
    if sources := q.values(SS + "SourceId"):
        out.append(S.source_id.in_(sources))
    out += _time(S.submission_time, q, SS + "SubmissionTime")
    if (author := q.one(SS + "AuthorPerson")) is not None:
        Au = SubmissionSetAuthor
        out.append(sa.exists().where(Au.set_id == S.id, Au.person.like(author)))
    if codes := q.values(SS + "ContentType"):
        out.append(sa.or_(*(sa.and_(S.content_type_code == c, S.content_type_scheme == s)
                            for c, s in codes)))
    return Selection(submission_sets=out)


def _find_folders(q: StoredQuery) -> Selection:
    out: Conditions = [
        F.patient_id == q.one(FO + "PatientId"), F.status.in_(q.values(FO + "Status"))
    ]
    out += _time(F.last_update_time, q, FO + "LastUpdateTime")
    for group in q.groups(FO + "CodeList"):
        C = FolderCode
        out.append(sa.exists().where(
            C.folder_id == F.id,
            sa.or_(*(sa.and_(C.code == c, C.scheme == s) for c, s in group)),
        ))
    return Selection(folders=out)


def _linking(objects: Select) -> Conditions:
    """Associations between returned objects, and those whose target is such a link."""
    inner = aliased(A)
    links = sa.select(inner.entry_uuid).where(inner.source.in_(objects), inner.target.in_(objects))
    return [A.source.in_(objects), sa.or_(A.target.in_(objects), A.target.in_(links))]


def _get_all(q: StoredQuery) -> Selection:
    pid = q.one("$patientId")
    docs = _document_filters(q, patient=None, status=DE + "Status") + [D.patient_id == pid]
    sets = [S.patient_id == pid, S.status.in_(q.values(SS + "Status"))]
    folders = [F.patient_id == pid, F.status.in_(q.values(FO + "Status"))]
    objects = sa.union_all(_uuids(D, docs), _uuids(S, sets), _uuids(F, folders))
    every = sa.select(objects.subquery().c.entry_uuid)
    return Selection(sets, docs, folders, _linking(every))


def _get_documents_and_associations(q: StoredQuery) -> Selection:
    docs = _by_id(D, q, DE + "EntryUUID", DE + "UniqueId")
    uuids = _uuids(D, docs)
    links = [sa.or_(A.source.in_(uuids), A.target.in_(uuids))]
    return Selection(documents=docs, associations=links)


def _get_associations(q: StoredQuery) -> Selection:
    uuids = q.values("$uuid")
    return Selection(associations=[sa.or_(A.source.in_(uuids), A.target.in_(uuids))])


def _get_submission_sets(q: StoredQuery) -> Selection:
    members = [A.type == HAS_MEMBER, A.target.in_(q.values("$uuid")), A.source.in_(_uuids(S, []))]
    return Selection(
        submission_sets=[S.entry_uuid.in_(sa.select(A.source).where(*members))],
        associations=members,
    )


def _get_submission_set_and_contents(q: StoredQuery) -> Selection:
    package = _uuids(S, _by_id(S, q, SS + "EntryUUID", SS + "UniqueId"))
    members = sa.select(A.target).where(A.type == HAS_MEMBER, A.source.in_(package))
    docs = [D.entry_uuid.in_(members), *_content_filters(q)]
    folders = [F.entry_uuid.in_(members)]
    inner = aliased(A)
    links = sa.select(inner.entry_uuid).where(
        inner.entry_uuid.in_(members), inner.target.in_(_uuids(D, docs))
    )
    returned = sa.or_(
        A.target.in_(_uuids(D, docs)), A.target.in_(_uuids(F, folders)), A.target.in_(links)
    )
    assocs = [sa.or_(sa.and_(A.type == HAS_MEMBER, A.source.in_(package), returned),
                     A.entry_uuid.in_(links))]
    return Selection([S.entry_uuid.in_(package)], docs, folders, assocs)


def _get_folder_and_contents(q: StoredQuery) -> Selection:
    folder = _by_id(F, q, FO + "EntryUUID", FO + "UniqueId")
    links: Conditions = [A.type == HAS_MEMBER, A.source.in_(_uuids(F, folder))]
    if statuses := q.values("$XDSAssociationStatus"):
        links.append(A.status.in_(statuses))
    docs = [D.entry_uuid.in_(sa.select(A.target).where(*links)), *_content_filters(q)]
    return Selection(
        folders=folder, documents=docs, associations=[*links, A.target.in_(_uuids(D, docs))]
    )


def _get_folders_for_document(q: StoredQuery) -> Selection:
    doc = _uuids(D, _by_id(D, q, DE + "EntryUUID", DE + "UniqueId"))
    holders = sa.select(A.source).where(A.type == HAS_MEMBER, A.target.in_(doc))
    return Selection(folders=[F.entry_uuid.in_(holders)])


def _get_related_documents(q: StoredQuery) -> Selection:
    doc = _uuids(D, _by_id(D, q, DE + "EntryUUID", DE + "UniqueId"))
    every_doc = sa.select(D.entry_uuid)
    assocs = [
        A.type.in_(q.values("$AssociationTypes")),
        sa.or_(A.source.in_(doc), A.target.in_(doc)),
        A.source.in_(every_doc),
        A.target.in_(every_doc),
    ]
    ends = sa.union_all(sa.select(A.source).where(*assocs), sa.select(A.target).where(*assocs))
    docs = [D.entry_uuid.in_(sa.select(ends.subquery().c[0]))]
    if q.has(DE + "Type"):
        docs.append(D.object_type.in_(q.values(DE + "Type")))
    return Selection(documents=docs, associations=assocs)


N = QueryName
_QUERIES: dict[QueryName, Callable[[StoredQuery], Selection]] = {
    N.FIND_DOCUMENTS: _find_documents,
    N.FIND_DOCUMENTS_BY_REFERENCE_ID: _find_documents,
    N.FIND_SUBMISSION_SETS: _find_submission_sets,
    N.FIND_FOLDERS: _find_folders,
    N.GET_ALL: _get_all,
    N.GET_DOCUMENTS: lambda q: Selection(
        documents=_by_id(D, q, DE + "EntryUUID", DE + "UniqueId", DE + "LogicalID")
    ),
    N.GET_FOLDERS: lambda q: Selection(
        folders=_by_id(F, q, FO + "EntryUUID", FO + "UniqueId", FO + "LogicalID")
    ),
    N.GET_ASSOCIATIONS: _get_associations,
    N.GET_DOCUMENTS_AND_ASSOCIATIONS: _get_documents_and_associations,
    N.GET_SUBMISSION_SETS: _get_submission_sets,
    N.GET_SUBMISSION_SET_AND_CONTENTS: _get_submission_set_and_contents,
    N.GET_FOLDER_AND_CONTENTS: _get_folder_and_contents,
    N.GET_FOLDERS_FOR_DOCUMENT: _get_folders_for_document,
    N.GET_RELATED_DOCUMENTS: _get_related_documents,
}


def selection(query: StoredQuery) -> Selection:
    return _QUERIES[query.name](query)
