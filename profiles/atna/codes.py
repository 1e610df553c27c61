"""Audit vocabularies and the per-transaction event table.

Sources: DICOM PS3.15 Annex A.5 and PS3.16 (DCM codes 1101xx), RFC 3881 object
id types, IHE ITI TF-2 audit sections per transaction as applied by IPF
(``*AuditStrategy``), summarised in ``shared/notes/ihe-facts.md`` section 10.
The table ``TRANSACTIONS`` is the one place that says which EventID and
EventActionCode each side of a transaction records.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from profiles.atna.message import AuditError, CodedValue, EventActionCode

DCM = "DCM"
RFC3881 = "RFC-3881"
IHE_TRANSACTIONS = "IHE Transactions"


def _dcm(code: str, text: str) -> CodedValue:
    return CodedValue(code, DCM, text)


class EventId:
    """EventID values (DICOM PS3.16 CID 400 "Audit Event ID")."""

    APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
    AUDIT_LOG_USED = _dcm("110101", "Audit Log Used")
    EXPORT = _dcm("110106", "Export")
    IMPORT = _dcm("110107", "Import")
    NETWORK_ENTRY = _dcm("110108", "Network Entry")
    PATIENT_RECORD = _dcm("110110", "Patient Record")
    QUERY = _dcm("110112", "Query")
    SECURITY_ALERT = _dcm("110113", "Security Alert")
    USER_AUTHENTICATION = _dcm("110114", "User Authentication")


class EventType:
    """DCM EventTypeCode values for node events (CID 401/402/403)."""

    APPLICATION_START = _dcm("110120", "Application Start")
    APPLICATION_STOP = _dcm("110121", "Application Stop")
    LOGIN = _dcm("110122", "Login")
    LOGOUT = _dcm("110123", "Logout")
    NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
    EMERGENCY_OVERRIDE_STARTED = _dcm("110127", "Emergency Override Started")
    NETWORK_CONFIGURATION = _dcm("110128", "Network Configuration")
    SECURITY_CONFIGURATION = _dcm("110129", "Security Configuration")
    HARDWARE_CONFIGURATION = _dcm("110130", "Hardware Configuration")
    SOFTWARE_CONFIGURATION = _dcm("110131", "Software Configuration")
    USE_OF_RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
    AUDIT_RECORDING_STOPPED = _dcm("110133", "Audit Recording Stopped")
    AUDIT_RECORDING_STARTED = _dcm("110134", "Audit Recording Started")
    OBJECT_SECURITY_ATTRIBUTES_CHANGED = _dcm("110135", "Object Security Attributes Changed")
    SECURITY_ROLES_CHANGED = _dcm("110136", "Security Roles Changed")
    USER_SECURITY_ATTRIBUTES_CHANGED = _dcm("110137", "User Security Attributes Changed")
    AUTHENTICATION_DECISION = _dcm("110143", "Authentication Decision")
    AUTHORIZATION_DECISION = _dcm("110144", "Authorization Decision")


class Role:
    """ActiveParticipant RoleIDCode values (CID 402)."""

    APPLICATION = _dcm("110150", "Application")
    APPLICATION_LAUNCHER = _dcm("110151", "Application Launcher")
    DESTINATION = _dcm("110152", "Destination Role ID")
    SOURCE = _dcm("110153", "Source Role ID")
    DESTINATION_MEDIA = _dcm("110154", "Destination Media")
    SOURCE_MEDIA = _dcm("110155", "Source Media")


class AuditSourceType:
    """AuditSourceTypeCode values (DICOM A.5.1, RFC 3881 5.4)."""

    END_USER_INTERFACE = _dcm("1", "End-user interface")
    DATA_ACQUISITION = _dcm("2", "Data acquisition device or instrument")
    WEB_SERVER = _dcm("3", "Web Server Process or Thread")
    APPLICATION_SERVER = _dcm("4", "Application Server Process or Thread")
    DATABASE_SERVER = _dcm("5", "Database Server Process or Thread")
    SECURITY_SERVER = _dcm("6", "Security Server")
    NETWORK_COMPONENT = _dcm("7", "Network Component")
    OPERATING_SOFTWARE = _dcm("8", "Operating Software")
    OTHER = _dcm("9", "Other")


class ObjectIdType:
    """ParticipantObjectIDTypeCode values that are not a transaction's own code."""

    PATIENT_NUMBER = CodedValue("2", RFC3881, "Patient Number")
    REPORT_NUMBER = CodedValue("9", RFC3881, "Report Number")
    USER_IDENTIFIER = CodedValue("11", RFC3881, "User Identifier")
    URI = CodedValue("12", RFC3881, "URI")
    NODE_ID = _dcm("110182", "Node ID")
    SUBMISSION_SET = CodedValue(
        "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
        "IHE XDS Metadata",
        "submission set classificationNode",
    )
    # Our choice: the requesting user's organization (XSPA attribute) as an object of
    # type Organization, so "from which organization" is searchable in the record.
    SUBJECT_ORGANIZATION = CodedValue(
        "urn:oasis:names:tc:xspa:1.0:subject:organization-id", "XSPA", "Subject Organization"
    )


class DetailType:
    """ParticipantObjectDetail ``type`` strings used by IHE (as IPF writes them)."""

    QUERY_ENCODING = "QueryEncoding"
    XCA_HOME_COMMUNITY_ID = "urn:ihe:iti:xca:2010:homeCommunityId"  # ITI-18/38 queries
    HOME_COMMUNITY_ID = "ihe:homeCommunityID"  # ITI-55 queries, retrieved documents
    REPOSITORY_UNIQUE_ID = "Repository Unique Id"
    MSH_10 = "MSH-10"  # HL7 v2 message control id (ITI-8, ITI-9)
    II = "II"  # HL7 v3 message id (ITI-44)
    ALERT_DESCRIPTION = "Alert Description"
    CERTIFICATE_SUBJECT = "Certificate Subject"


class Side(StrEnum):
    """Which end of the transaction this gateway played when it recorded the event."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class Kind(StrEnum):
    """The shape of the audit record a transaction produces."""

    QUERY = "query"  # source = initiator; query object + patients
    SUBMISSION = "submission"  # source = initiator; submission set + patient
    RETRIEVE = "retrieve"  # source = responder (data flows back); documents
    PATIENT_FEED = "patient-feed"  # source = initiator; one patient per record


class QueryStyle(StrEnum):
    """How the query object's id and details are filled (differs by message family)."""

    EBXML = "ebxml"  # id = stored query UUID; QueryEncoding + XCA homeCommunityId
    HL7V3 = "hl7v3"  # id = message id, no details (ITI-45)
    XCPD = "xcpd"  # id = message id; ihe:homeCommunityID of the sender (ITI-55)
    HL7V2 = "hl7v2"  # id = MSH-10; detail MSH-10


@dataclass(frozen=True)
class TransactionAudit:
    """The audit codes for one transaction, for each side."""

    transaction: str  # "ITI-38"
    name: str  # "Cross Gateway Query"
    kind: Kind
    initiator: tuple[CodedValue, EventActionCode]
    responder: tuple[CodedValue, EventActionCode]
    query_style: QueryStyle | None = None
    detail_message_id: str | None = None  # detail type carrying the message id (feeds)

    @property
    def event_type(self) -> CodedValue:
        """EventTypeCode, also the query object's ParticipantObjectIDTypeCode."""
        return CodedValue(self.transaction, IHE_TRANSACTIONS, self.name)

    def event(self, side: Side) -> tuple[CodedValue, EventActionCode]:
        return self.initiator if side is Side.INITIATOR else self.responder


_Q = (EventId.QUERY, EventActionCode.EXECUTE)
_EXPORT = (EventId.EXPORT, EventActionCode.READ)
_IMPORT = (EventId.IMPORT, EventActionCode.CREATE)
_FEED = (EventId.PATIENT_RECORD, EventActionCode.CREATE)  # action set per trigger


def _t(tx: str, name: str, kind: Kind, ini, res, style=None, msg_detail=None) -> TransactionAudit:
    return TransactionAudit(tx, name, kind, ini, res, style, msg_detail)


TRANSACTIONS: dict[str, TransactionAudit] = {
    t.transaction: t
    for t in (
        _t(
            "ITI-8",
            "Patient Identity Feed",
            Kind.PATIENT_FEED,
            _FEED,
            _FEED,
            msg_detail=DetailType.MSH_10,
        ),
        _t("ITI-9", "PIX Query", Kind.QUERY, _Q, _Q, QueryStyle.HL7V2),
        _t("ITI-18", "Registry Stored Query", Kind.QUERY, _Q, _Q, QueryStyle.EBXML),
        _t("ITI-38", "Cross Gateway Query", Kind.QUERY, _Q, _Q, QueryStyle.EBXML),
        _t("ITI-39", "Cross Gateway Retrieve", Kind.RETRIEVE, _IMPORT, _EXPORT),
        _t("ITI-41", "Provide and Register Document Set-b", Kind.SUBMISSION, _EXPORT, _IMPORT),
        _t("ITI-42", "Register Document Set-b", Kind.SUBMISSION, _EXPORT, _IMPORT),
        _t("ITI-43", "Retrieve Document Set", Kind.RETRIEVE, _IMPORT, _EXPORT),
        _t(
            "ITI-44",
            "Patient Identity Feed",
            Kind.PATIENT_FEED,
            _FEED,
            _FEED,
            msg_detail=DetailType.II,
        ),
        _t("ITI-45", "PIX Query", Kind.QUERY, _Q, _Q, QueryStyle.HL7V3),
        _t("ITI-55", "Cross Gateway Patient Discovery", Kind.QUERY, _Q, _Q, QueryStyle.XCPD),
    )
}

_C, _U, _D = EventActionCode.CREATE, EventActionCode.UPDATE, EventActionCode.DELETE

# Patient feed triggers -> one audit record per action. A merge records the
# retired id as Delete and the surviving id as Update (IPF Iti8/Iti44AuditStrategy).
FEED_ACTIONS: dict[str, tuple[EventActionCode, ...]] = {
    "A01": (_C,),
    "A04": (_C,),
    "A05": (_C,),
    "A08": (_U,),
    "A40": (_D, _U),
    "PRPA_IN201301UV02": (_C,),
    "PRPA_IN201302UV02": (_U,),
    "PRPA_IN201304UV02": (_D, _U),
}


def transaction_audit(transaction: str) -> TransactionAudit:
    """The audit row for a transaction id, or AuditError if it is not audited here."""
    try:
        return TRANSACTIONS[transaction]
    except KeyError:
        raise AuditError(f"no audit event is defined for {transaction!r}") from None


def feed_actions(trigger: str) -> tuple[EventActionCode, ...]:
    """EventActionCodes for a patient feed trigger (``A40`` or ``PRPA_IN201304UV02``...)."""
    try:
        return FEED_ACTIONS[trigger]
    except KeyError:
        raise AuditError(f"no patient feed audit is defined for trigger {trigger!r}") from None
