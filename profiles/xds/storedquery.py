"""Registry Stored Query parameters (ITI TF-2a 3.18.4.1.2): the request's AdhocQuery
read into a ``StoredQuery`` whose parameters are checked against the query's table.

Encoding of a parameter value (ITI TF-2a 3.18.4.1.2.3.5): a string is single-quoted
(``'a'``, a quote inside doubled ``''``), a list is ``('a','b')``, a time is an
unquoted ``YYYY[MM[DD[hh[mm[ss]]]]]`` (quoted is accepted too), a code is
``'code^^codingScheme'``. Several ``Value`` elements of one Slot, and the items of a
list, are alternatives (OR); the code lists that may repeat their Slot
(eventCodeList, confidentialityCode, Folder codeList, referenceIdList) combine the
Slots with AND. A value that is not written this way is refused rather than guessed
at, so nothing a peer writes reaches SQL except as a bound, parsed value.

Errors: XDSUnknownStoredQuery, XDSStoredQueryMissingParam (a required parameter, or
none of a required choice), XDSStoredQueryParamNumber (several values or Slots where
one is allowed, or two members of a choice), XDSRegistryError (a malformed value).
Parameters a query does not define are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from profiles.errors import (
    GatewayError,
    XDSRegistryError,
    XDSStoredQueryMissingParam,
    XDSStoredQueryParamNumber,
    XDSUnknownStoredQuery,
)
from profiles.xds import codes as c
from profiles.xds.queryvalues import code_value, encode, quoted_list, unquote
from profiles.xds.values import is_dtm

R = f"{{{c.RIM}}}"
Q = f"{{{c.QUERY}}}"


class ReturnType(StrEnum):
    LEAF_CLASS = "LeafClass"
    OBJECT_REF = "ObjectRef"


class Kind(StrEnum):
    """How a parameter's values are written and how many it may have."""

    ONE = "one string"  # exactly one value
    MANY = "strings"  # OR list
    ALL = "strings, Slot repeatable"  # OR within a Slot, AND across Slots
    CODES = "codes"  # OR list of code^^scheme
    ALL_CODES = "codes, Slot repeatable"
    TIME = "time"
    NUMBER = "number"


class QueryName(StrEnum):
    """The ITI-18 stored queries by name; ``QUERY_IDS`` maps them to their ids."""

    FIND_DOCUMENTS = "FindDocuments"
    FIND_DOCUMENTS_BY_REFERENCE_ID = "FindDocumentsByReferenceId"
    FIND_SUBMISSION_SETS = "FindSubmissionSets"
    FIND_FOLDERS = "FindFolders"
    GET_ALL = "GetAll"
    GET_DOCUMENTS = "GetDocuments"
    GET_FOLDERS = "GetFolders"
    GET_ASSOCIATIONS = "GetAssociations"
    GET_DOCUMENTS_AND_ASSOCIATIONS = "GetDocumentsAndAssociations"
    GET_SUBMISSION_SETS = "GetSubmissionSets"
    GET_SUBMISSION_SET_AND_CONTENTS = "GetSubmissionSetAndContents"
    GET_FOLDER_AND_CONTENTS = "GetFolderAndContents"
    GET_FOLDERS_FOR_DOCUMENT = "GetFoldersForDocument"
    GET_RELATED_DOCUMENTS = "GetRelatedDocuments"


N = QueryName
QUERY_IDS: dict[str, QueryName] = {
    "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d": N.FIND_DOCUMENTS,
    "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492": N.FIND_DOCUMENTS_BY_REFERENCE_ID,
    "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9": N.FIND_SUBMISSION_SETS,
    "urn:uuid:958f3006-baad-4929-a4de-ff1114824431": N.FIND_FOLDERS,
    "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3": N.GET_ALL,
    "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4": N.GET_DOCUMENTS,
    "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4": N.GET_FOLDERS,
    "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155": N.GET_ASSOCIATIONS,
    "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a": N.GET_DOCUMENTS_AND_ASSOCIATIONS,
    "urn:uuid:51224314-5390-4169-9b91-b1980040715a": N.GET_SUBMISSION_SETS,
    "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83": N.GET_SUBMISSION_SET_AND_CONTENTS,
    "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7": N.GET_FOLDER_AND_CONTENTS,
    "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578": N.GET_FOLDERS_FOR_DOCUMENT,
    "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6": N.GET_RELATED_DOCUMENTS,
}
QUERY_ID_OF: dict[QueryName, str] = {name: qid for qid, name in QUERY_IDS.items()}

DE = "$XDSDocumentEntry"
SS = "$XDSSubmissionSet"
FO = "$XDSFolder"
METADATA_LEVEL = {"$MetadataLevel": Kind.NUMBER}
# The DocumentEntry code parameters and the DocumentEntry code kind each one filters.
DOCUMENT_CODE_PARAMS = {
    DE + "ClassCode": "class",
    DE + "TypeCode": "type",
    DE + "PracticeSettingCode": "practice",
    DE + "HealthcareFacilityTypeCode": "facility",
    DE + "EventCodeList": "event",
    DE + "ConfidentialityCode": "confidentiality",
    DE + "FormatCode": "format",
}
_FIND_DOCUMENTS = {
    DE + "PatientId": Kind.ONE,
    DE + "Status": Kind.MANY,
    DE + "Type": Kind.MANY,
    DE + "AuthorPerson": Kind.MANY,
    DE + "DocumentAvailability": Kind.MANY,
    **{p: Kind.CODES for p in DOCUMENT_CODE_PARAMS},
    DE + "EventCodeList": Kind.ALL_CODES,
    DE + "ConfidentialityCode": Kind.ALL_CODES,
    **{DE + f"{t}Time{e}": Kind.TIME for t in ("Creation", "ServiceStart", "ServiceStop")
       for e in ("From", "To")},
    **METADATA_LEVEL,
}
_CONTENT_FILTERS = {
    DE + "FormatCode": Kind.CODES,
    DE + "ConfidentialityCode": Kind.ALL_CODES,
    DE + "Type": Kind.MANY,
    **METADATA_LEVEL,
}


@dataclass(frozen=True)
class QuerySpec:
    """A stored query's parameters, the required ones, and its one-of choices."""

    params: Mapping[str, Kind]
    required: tuple[str, ...] = ()
    choice: tuple[str, ...] = ()  # exactly one of these


def _choice(*names: str) -> dict[str, Kind]:
    return dict.fromkeys(names, Kind.MANY)


SPECS: dict[QueryName, QuerySpec] = {
    N.FIND_DOCUMENTS: QuerySpec(_FIND_DOCUMENTS, (DE + "PatientId", DE + "Status")),
    N.FIND_DOCUMENTS_BY_REFERENCE_ID: QuerySpec(
        {**_FIND_DOCUMENTS, DE + "ReferenceIdList": Kind.ALL},
        (DE + "PatientId", DE + "Status", DE + "ReferenceIdList"),
    ),
    N.FIND_SUBMISSION_SETS: QuerySpec(
        {
            SS + "PatientId": Kind.ONE,
            SS + "Status": Kind.MANY,
            SS + "SourceId": Kind.MANY,
            SS + "SubmissionTimeFrom": Kind.TIME,
            SS + "SubmissionTimeTo": Kind.TIME,
            SS + "AuthorPerson": Kind.ONE,
            SS + "ContentType": Kind.CODES,
            **METADATA_LEVEL,
        },
        (SS + "PatientId", SS + "Status"),
    ),
    N.FIND_FOLDERS: QuerySpec(
        {
            FO + "PatientId": Kind.ONE,
            FO + "Status": Kind.MANY,
            FO + "LastUpdateTimeFrom": Kind.TIME,
            FO + "LastUpdateTimeTo": Kind.TIME,
            FO + "CodeList": Kind.ALL_CODES,
            **METADATA_LEVEL,
        },
        (FO + "PatientId", FO + "Status"),
    ),
    N.GET_ALL: QuerySpec(
        {
            "$patientId": Kind.ONE,
            DE + "Status": Kind.MANY,
            SS + "Status": Kind.MANY,
            FO + "Status": Kind.MANY,
            **_CONTENT_FILTERS,
        },
        ("$patientId", DE + "Status", SS + "Status", FO + "Status"),
    ),
    N.GET_DOCUMENTS: QuerySpec(
        {**_choice(DE + "EntryUUID", DE + "UniqueId", DE + "LogicalID"), **METADATA_LEVEL},
        choice=(DE + "EntryUUID", DE + "UniqueId", DE + "LogicalID"),
    ),
    N.GET_FOLDERS: QuerySpec(
        {**_choice(FO + "EntryUUID", FO + "UniqueId", FO + "LogicalID"), **METADATA_LEVEL},
        choice=(FO + "EntryUUID", FO + "UniqueId", FO + "LogicalID"),
    ),
    N.GET_ASSOCIATIONS: QuerySpec({"$uuid": Kind.MANY, **METADATA_LEVEL}, ("$uuid",)),
    N.GET_DOCUMENTS_AND_ASSOCIATIONS: QuerySpec(
        {**_choice(DE + "EntryUUID", DE + "UniqueId"), **METADATA_LEVEL},
        choice=(DE + "EntryUUID", DE + "UniqueId"),
    ),
    N.GET_SUBMISSION_SETS: QuerySpec({"$uuid": Kind.MANY, **METADATA_LEVEL}, ("$uuid",)),
    N.GET_SUBMISSION_SET_AND_CONTENTS: QuerySpec(
        {SS + "EntryUUID": Kind.ONE, SS + "UniqueId": Kind.ONE, **_CONTENT_FILTERS},
        choice=(SS + "EntryUUID", SS + "UniqueId"),
    ),
    N.GET_FOLDER_AND_CONTENTS: QuerySpec(
        {
            FO + "EntryUUID": Kind.ONE,
            FO + "UniqueId": Kind.ONE,
            "$XDSAssociationStatus": Kind.MANY,
            **_CONTENT_FILTERS,
        },
        choice=(FO + "EntryUUID", FO + "UniqueId"),
    ),
    N.GET_FOLDERS_FOR_DOCUMENT: QuerySpec(
        {DE + "EntryUUID": Kind.ONE, DE + "UniqueId": Kind.ONE, **METADATA_LEVEL},
        choice=(DE + "EntryUUID", DE + "UniqueId"),
    ),
    N.GET_RELATED_DOCUMENTS: QuerySpec(
        {
            DE + "EntryUUID": Kind.ONE,
            DE + "UniqueId": Kind.ONE,
            "$AssociationTypes": Kind.MANY,
            DE + "Type": Kind.MANY,
            **METADATA_LEVEL,
        },
        ("$AssociationTypes",),
        choice=(DE + "EntryUUID", DE + "UniqueId"),
    ),
}



@dataclass(frozen=True)
class StoredQuery:
    """A checked stored query: ``params`` maps each given parameter to its Slots, each
    Slot a tuple of alternatives (strings, or ``(code, scheme)`` for code parameters)."""

    name: QueryName
    return_type: ReturnType = ReturnType.LEAF_CLASS
    home: str | None = None
    params: Mapping[str, tuple[tuple, ...]] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.params is None:
            object.__setattr__(self, "params", {})

    @property
    def id(self) -> str:
        return QUERY_ID_OF[self.name]

    def has(self, name: str) -> bool:
        return name in self.params

    def one(self, name: str) -> str | None:
        """The single value of ``name`` (None when absent)."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> tuple:
        """Every alternative of ``name`` (its Slots flattened)."""
        return tuple(v for group in self.params.get(name, ()) for v in group)

    def groups(self, name: str) -> tuple[tuple, ...]:
        """The Slots of ``name``: AND across them, OR within each."""
        return tuple(self.params.get(name, ()))


def build(
    name: QueryName,
    params: Mapping[str, Iterable | str],
    *,
    return_type: ReturnType = ReturnType.LEAF_CLASS,
    home: str | None = None,
) -> StoredQuery:
    """A StoredQuery from Python values (one Slot per parameter); checked like a request."""
    slots = {k: [encode(v)] for k, v in params.items()}
    return check(name, slots, return_type=return_type, home=home)


def parse_adhoc_query_request(el: etree._Element) -> StoredQuery:
    """``query:AdhocQueryRequest`` -> a checked StoredQuery (raises GatewayError)."""
    if el.tag != Q + "AdhocQueryRequest":
        raise XDSRegistryError(f"expected AdhocQueryRequest, got {etree.QName(el).localname}")
    option = el.find(Q + "ResponseOption")
    raw_type = option.get("returnType", "") if option is not None else ""
    if raw_type not in ReturnType._value2member_map_:
        raise XDSRegistryError(
            f"returnType {raw_type!r} is not supported: use LeafClass or ObjectRef"
        )
    query = el.find(R + "AdhocQuery")
    if query is None:
        raise XDSRegistryError("AdhocQueryRequest has no AdhocQuery")
    qid = (query.get("id") or "").strip()
    if qid not in QUERY_IDS:
        raise XDSUnknownStoredQuery(f"stored query {qid!r} is not supported", location=qid)
    slots: dict[str, list[str]] = {}
    for slot in query.iterfind(R + "Slot"):
        texts = [(v.text or "") for v in slot.iterfind(f"{R}ValueList/{R}Value")]
        # Several Value elements are one Slot's alternatives: keep them as one list.
        slots.setdefault(slot.get("name", ""), []).append(texts)  # type: ignore[arg-type]
    return check(QUERY_IDS[qid], slots, return_type=ReturnType(raw_type), home=query.get("home"))


def check(
    name: QueryName,
    slots: Mapping[str, list],
    *,
    return_type: ReturnType = ReturnType.LEAF_CLASS,
    home: str | None = None,
) -> StoredQuery:
    """Decode and check each parameter of query ``name`` against its spec; report all."""
    spec = SPECS[name]
    errors: list[GatewayError] = []
    params: dict[str, tuple[tuple, ...]] = {}
    for param, kind in spec.params.items():
        if param not in slots:
            continue
        try:
            params[param] = _decode(param, kind, slots[param])
        except GatewayError as e:
            errors.append(e)
    for param in spec.required:
        if param not in slots:
            errors.append(
                XDSStoredQueryMissingParam(f"{name}: {param} is required", location=param)
            )
    if spec.choice:
        given = [p for p in spec.choice if p in slots]
        if not given:
            errors.append(XDSStoredQueryMissingParam(
                f"{name}: one of {', '.join(spec.choice)} is required", location=name))
        elif len(given) > 1:
            errors.append(XDSStoredQueryParamNumber(
                f"{name}: only one of {', '.join(given)} may be given", location=given[1]))
    if errors:
        raise GatewayError.collect(errors)
    return StoredQuery(name, return_type, home, params)


def _decode(param: str, kind: Kind, slots: list) -> tuple[tuple, ...]:
    repeatable = kind in (Kind.ALL, Kind.ALL_CODES)
    if len(slots) > 1 and not repeatable:
        raise XDSStoredQueryParamNumber(f"{param} may appear only once", location=param)
    groups = []
    for texts in slots:
        texts = [texts] if isinstance(texts, str) else texts
        values = [v for text in texts for v in _values(param, text, kind)]
        if not values:
            raise XDSRegistryError(f"{param} has no value", location=param)
        if kind in (Kind.ONE, Kind.TIME, Kind.NUMBER) and len(values) > 1:
            raise XDSStoredQueryParamNumber(f"{param} takes a single value", location=param)
        if kind in (Kind.CODES, Kind.ALL_CODES):
            values = [code_value(param, v) for v in values]
        groups.append(tuple(values))
    return tuple(groups)


def _values(param: str, text: str, kind: Kind) -> list[str]:
    text = text.strip()
    if kind in (Kind.TIME, Kind.NUMBER):
        value = unquote(param, text) if text.startswith("'") else text
        good = is_dtm(value) if kind is Kind.TIME else value.isdigit()
        if not good:
            raise XDSRegistryError(f"{param} value {text!r} is not a {kind.value}", location=param)
        return [value]
    if text.startswith("(") and text.endswith(")"):
        return quoted_list(param, text[1:-1])
    return [unquote(param, text)]
