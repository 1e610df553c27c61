"""The DICOM PS3.15 (2017c) audit message as frozen dataclasses.

An ``AuditMessage`` is what ITI-20 carries: one event, the systems and people
that took part, who reported it, and the objects (patients, queries, documents)
it touched. The models mirror the schema ``dicom2017c.xsd`` one to one so the
codec in ``codec.py`` stays mechanical; the IHE meaning (which participant is
the source, which codes a transaction uses) lives in ``codes.py`` and
``events.py``.

Fixed vocabularies of the schema are enums; a value outside them raises
``AuditError`` when parsed. Open vocabularies (event ids, event types, roles,
object id types) are ``CodedValue`` so any coded value a peer sends survives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum, StrEnum
from typing import TypeVar


class AuditError(ValueError):
    """An audit message, syslog message or frame that cannot be accepted.

    Raised by parsers on input from peers and by builders on values that would
    produce an invalid record; never answered to a SOAP peer.
    """


@dataclass(frozen=True)
class CodedValue:
    """DICOM CodedValueType: ``csd-code``, ``codeSystemName``, ``originalText``.

    ``originalText`` carries the human-readable name (the schema requires it);
    ``display_name`` is the rarely used optional ``displayName``. An empty
    string means "absent" for the attributes the schema lets be absent.
    """

    code: str
    system_name: str
    original_text: str
    display_name: str = ""


class EventActionCode(StrEnum):
    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class EventOutcome(IntEnum):
    """EventOutcomeIndicator. For security alerts a failure value is the alert's severity."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


class NetworkAccessPointType(StrEnum):
    MACHINE_NAME = "1"
    IP_ADDRESS = "2"
    TELEPHONE = "3"
    EMAIL = "4"
    URI = "5"


class ParticipantObjectType(StrEnum):
    PERSON = "1"
    SYSTEM_OBJECT = "2"
    ORGANIZATION = "3"
    OTHER = "4"


class ParticipantObjectRole(StrEnum):
    """ParticipantObjectTypeCodeRole (RFC 3881 / DICOM)."""

    PATIENT = "1"
    LOCATION = "2"
    REPORT = "3"
    RESOURCE = "4"
    MASTER_FILE = "5"
    USER = "6"
    LIST = "7"
    DOCTOR = "8"
    SUBSCRIBER = "9"
    GUARANTOR = "10"
    SECURITY_USER_ENTITY = "11"
    SECURITY_USER_GROUP = "12"
    SECURITY_RESOURCE = "13"
    SECURITY_GRANULARITY_DEFINITION = "14"
    PROVIDER = "15"
    DATA_DESTINATION = "16"
    DATA_ARCHIVE = "17"
    SCHEDULE = "18"
    CUSTOMER = "19"
    JOB = "20"
    JOB_STREAM = "21"
    TABLE = "22"
    ROUTING_CRITERIA = "23"
    QUERY = "24"
    DATA_SOURCE = "25"
    PROCESSING_ELEMENT = "26"


class DataLifeCycle(StrEnum):
    ORIGINATION = "1"
    IMPORT_COPY = "2"
    AMENDMENT = "3"
    VERIFICATION = "4"
    TRANSLATION = "5"
    ACCESS_USE = "6"
    DE_IDENTIFICATION = "7"
    AGGREGATION = "8"
    REPORT = "9"
    EXPORT = "10"
    DISCLOSURE = "11"
    RECEIPT_OF_DISCLOSURE = "12"
    ARCHIVING = "13"
    LOGICAL_DELETION = "14"
    PERMANENT_ERASURE = "15"


E = TypeVar("E", bound=Enum)


def enum_value(kind: type[E], raw: object, what: str) -> E:
    """Look a raw value up in a fixed vocabulary, raising AuditError if it is not there."""
    try:
        return kind(raw)
    except ValueError:
        raise AuditError(f"{what}: {raw!r} is not an allowed value") from None


@dataclass(frozen=True)
class EventIdentification:
    """What happened, when, and whether it succeeded."""

    event_id: CodedValue
    date_time: datetime  # timezone-aware
    outcome: EventOutcome
    action: EventActionCode | None = None
    event_types: tuple[CodedValue, ...] = ()
    outcome_description: str | None = None
    purposes_of_use: tuple[CodedValue, ...] = ()

    def __post_init__(self) -> None:
        if self.date_time.tzinfo is None:
            raise AuditError("EventDateTime must be timezone-aware")


@dataclass(frozen=True)
class ActiveParticipant:
    """A system or person that took part; RoleIDCode says how (source, destination...)."""

    user_id: str
    user_is_requestor: bool
    alternative_user_id: str | None = None
    user_name: str | None = None
    role_id_codes: tuple[CodedValue, ...] = ()
    network_access_point_id: str | None = None
    network_access_point_type: NetworkAccessPointType | None = None
    media_type: CodedValue | None = None  # MediaIdentifier/MediaType (DICOM media only)

    def has_role(self, role: CodedValue) -> bool:
        return any(
            r.code == role.code and r.system_name == role.system_name for r in self.role_id_codes
        )


@dataclass(frozen=True)
class AuditSourceIdentification:
    """Who reports the event: this gateway (or, in the repository, the sender)."""

    audit_source_id: str
    enterprise_site_id: str | None = None
    type_codes: tuple[CodedValue, ...] = ()


@dataclass(frozen=True)
class ParticipantObjectDetail:
    """A type/value pair; the value is raw bytes (base64 on the wire, by the schema)."""

    type: str
    value: bytes


@dataclass(frozen=True)
class ParticipantObjectIdentification:
    """A patient, query, document, submission set or security resource the event touched.

    ``name`` and ``query`` are a choice in the schema: at most one of them.
    ``query`` is the raw request bytes; the codec base64-encodes them.
    """

    id_type: CodedValue
    object_id: str | None = None
    type_code: ParticipantObjectType | None = None
    role: ParticipantObjectRole | None = None
    lifecycle: DataLifeCycle | None = None
    sensitivity: str | None = None
    name: str | None = None
    query: bytes | None = None
    details: tuple[ParticipantObjectDetail, ...] = ()

    def __post_init__(self) -> None:
        if self.name is not None and self.query is not None:
            raise AuditError("ParticipantObjectName and ParticipantObjectQuery are exclusive")

    def detail(self, type_: str) -> bytes | None:
        return next((d.value for d in self.details if d.type == type_), None)


@dataclass(frozen=True)
class AuditMessage:
    """One audit record: the root ``AuditMessage`` element."""

    event: EventIdentification
    active_participants: tuple[ActiveParticipant, ...]
    audit_source: AuditSourceIdentification
    participant_objects: tuple[ParticipantObjectIdentification, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.active_participants:
            raise AuditError("an AuditMessage needs at least one ActiveParticipant")

    def participants_with_role(self, role: CodedValue) -> tuple[ActiveParticipant, ...]:
        return tuple(p for p in self.active_participants if p.has_role(role))

    def objects_with_id_type(
        self, id_type: CodedValue
    ) -> tuple[ParticipantObjectIdentification, ...]:
        return tuple(
            o
            for o in self.participant_objects
            if o.id_type.code == id_type.code and o.id_type.system_name == id_type.system_name
        )
