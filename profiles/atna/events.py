"""Builders: one audit message per transaction kind, from plain typed values.

The caller (the gateway, after a transaction ran or was refused) says which
transaction, which side we played, the two network endpoints, the human behind
the request and the objects involved; the builder picks the codes from
``codes.TRANSACTIONS`` and the IHE layout:

* Source (RoleIDCode 110153) is the side the data comes from: the initiator for
  queries, submissions and feeds, the responder for retrieves (ITI-39/43), as
  ITI TF-2 defines them. Destination (110152) is the other side.
* ``UserIsRequestor`` is true for the human requestor when there is one, else for
  the initiating system; the responder is never the requestor.
* The human requestor follows XUA (ITI TF-2b 3.40.4.2): UserName is
  ``alias<NameID@Issuer>``, RoleIDCode the subject roles, and the purposes of use
  go into EventIdentification/PurposeOfUse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from profiles.atna.codes import (
    DetailType,
    Kind,
    ObjectIdType,
    QueryStyle,
    Role,
    Side,
    TransactionAudit,
    feed_actions,
    transaction_audit,
)
from profiles.atna.message import (
    ActiveParticipant,
    AuditError,
    AuditMessage,
    AuditSourceIdentification,
    CodedValue,
    EventActionCode,
    EventIdentification,
    EventOutcome,
    NetworkAccessPointType,
    ParticipantObjectDetail,
    ParticipantObjectIdentification,
    ParticipantObjectRole,
    ParticipantObjectType,
)


@dataclass(frozen=True)
class Endpoint:
    """One system in a transaction.

    ``user_id`` is the SOAP endpoint URI (for the initiator its wsa:ReplyTo or
    our own address), or ``APP|FACILITY`` for HL7 v2. ``host`` is the network
    access point: an IP address or a DNS name. ``process_id`` goes in
    AlternativeUserID (IHE asks for it on our own side). ``user_name`` may carry
    the peer certificate's subject.
    """

    user_id: str
    host: str | None = None
    process_id: str | None = None
    user_name: str | None = None


@dataclass(frozen=True)
class HumanRequestor:
    """The person behind a request, as the verified SAML assertion names them."""

    subject_id: str  # XSPA subject-id, or the NameID when the assertion has none
    name_id: str | None = None  # Subject/NameID
    issuer: str | None = None  # assertion Issuer
    sp_provided_id: str | None = None  # NameID@SPProvidedID (the XUA "alias")
    organization: str | None = None
    organization_id: str | None = None
    roles: tuple[CodedValue, ...] = ()
    purposes_of_use: tuple[CodedValue, ...] = ()

    @property
    def xua_user_name(self) -> str | None:
        """``alias<user@issuer>`` as ITI TF-2b 3.40.4.2 prescribes for UserName."""
        if not self.name_id or not self.issuer:
            return None
        return f"{self.sp_provided_id or ''}<{self.name_id}@{self.issuer}>"


@dataclass(frozen=True)
class DocumentRef:
    """A retrieved document: uniqueId with its repository and community."""

    document_id: str
    repository_id: str | None = None
    home_community_id: str | None = None


@dataclass(frozen=True)
class Occasion:
    """What every record shares: who reports it, when, and the outcome."""

    audit_source: AuditSourceIdentification
    when: datetime
    outcome: EventOutcome = EventOutcome.SUCCESS
    outcome_description: str | None = None


def network_access_point(host: str | None) -> NetworkAccessPointType | None:
    """Type code 2 for an IP address, 1 for anything else (a DNS name)."""
    if host is None:
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return NetworkAccessPointType.MACHINE_NAME
    return NetworkAccessPointType.IP_ADDRESS


def system_participant(endpoint: Endpoint, role: CodedValue, *, requestor: bool):
    return ActiveParticipant(
        user_id=endpoint.user_id,
        user_is_requestor=requestor,
        alternative_user_id=endpoint.process_id,
        user_name=endpoint.user_name,
        role_id_codes=(role,),
        network_access_point_id=endpoint.host,
        network_access_point_type=network_access_point(endpoint.host),
    )


def human_participant(human: HumanRequestor) -> ActiveParticipant:
    return ActiveParticipant(
        user_id=human.subject_id,
        user_is_requestor=True,
        user_name=human.xua_user_name,
        role_id_codes=human.roles,
    )


def organization_object(human: HumanRequestor) -> ParticipantObjectIdentification | None:
    """The requester's organization, kept searchable (a gateway choice, see codes.py)."""
    if not human.organization and not human.organization_id:
        return None
    return ParticipantObjectIdentification(
        id_type=ObjectIdType.SUBJECT_ORGANIZATION,
        object_id=human.organization_id or human.organization,
        type_code=ParticipantObjectType.ORGANIZATION,
        name=human.organization,
    )


def patient_object(patient_id: str, details=()) -> ParticipantObjectIdentification:
    """A patient in CX form (``id^^^&root&ISO``) as ITI TF-2 asks."""
    return ParticipantObjectIdentification(
        id_type=ObjectIdType.PATIENT_NUMBER,
        object_id=patient_id,
        type_code=ParticipantObjectType.PERSON,
        role=ParticipantObjectRole.PATIENT,
        details=tuple(details),
    )


def _detail(type_: str, value: str | None) -> tuple[ParticipantObjectDetail, ...]:
    return () if value is None else (ParticipantObjectDetail(type_, value.encode("utf-8")),)


def _assemble(
    row: TransactionAudit,
    side: Side,
    action: EventActionCode,
    occasion: Occasion,
    initiator: Endpoint,
    responder: Endpoint,
    human: HumanRequestor | None,
    objects: Iterable[ParticipantObjectIdentification],
) -> AuditMessage:
    """Event identification and participants in IHE order: source, human, destination."""
    event_id, _ = row.event(side)
    retrieve = row.kind is Kind.RETRIEVE  # data flows from the responder
    init_role, resp_role = (
        (Role.DESTINATION, Role.SOURCE) if retrieve else (Role.SOURCE, Role.DESTINATION)
    )
    init = system_participant(initiator, init_role, requestor=human is None)
    resp = system_participant(responder, resp_role, requestor=False)
    source, destination = (resp, init) if retrieve else (init, resp)
    people = (human_participant(human),) if human is not None else ()
    org = organization_object(human) if human is not None else None
    return AuditMessage(
        event=EventIdentification(
            event_id=event_id,
            date_time=occasion.when,
            outcome=occasion.outcome,
            action=action,
            event_types=(row.event_type,),
            outcome_description=occasion.outcome_description,
            purposes_of_use=human.purposes_of_use if human is not None else (),
        ),
        active_participants=(source, *people, destination),
        audit_source=occasion.audit_source,
        participant_objects=(*objects, *((org,) if org else ())),
    )


def _row(transaction: str, kind: Kind) -> TransactionAudit:
    row = transaction_audit(transaction)
    if row.kind is not kind:
        raise AuditError(f"{transaction} is audited as {row.kind.value}, not {kind.value}")
    return row


def query_event(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    query: bytes,
    query_id: str,
    human: HumanRequestor | None = None,
    patient_ids: Iterable[str] = (),
    home_community_id: str | None = None,
    query_encoding: str = "UTF-8",
) -> AuditMessage:
    """ITI-9, ITI-18, ITI-38, ITI-45, ITI-55: EventID Query (110112), action E.

    ``query`` is the request payload (AdhocQueryRequest, queryByParameter, or the
    HL7 v2 QBP message); ``query_id`` the stored query UUID (ebXML), the message
    id ``ext@root`` (HL7 v3) or MSH-10 (HL7 v2). ``home_community_id`` is the
    AdhocQuery ``home`` (ITI-18/38) or the sender's community (ITI-55); other
    transactions ignore it. ``patient_ids`` are CX strings: the queried patient
    and, on the responding side, those returned.
    """
    row = _row(transaction, Kind.QUERY)
    if row.query_style is QueryStyle.EBXML:
        details = _detail(DetailType.QUERY_ENCODING, query_encoding) + _detail(
            DetailType.XCA_HOME_COMMUNITY_ID, home_community_id
        )
    elif row.query_style is QueryStyle.XCPD:
        details = _detail(DetailType.HOME_COMMUNITY_ID, home_community_id)
    elif row.query_style is QueryStyle.HL7V2:
        details = _detail(DetailType.MSH_10, query_id)
    else:
        details = ()
    query_object = ParticipantObjectIdentification(
        id_type=row.event_type,
        object_id=query_id,
        type_code=ParticipantObjectType.SYSTEM_OBJECT,
        role=ParticipantObjectRole.QUERY,
        query=query,
        details=details,
    )
    patients = [patient_object(p) for p in dict.fromkeys(patient_ids)]
    _, action = row.event(side)
    return _assemble(
        row, side, action, occasion, initiator, responder, human, [*patients, query_object]
    )


def submission_event(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    submission_set_id: str,
    patient_id: str | None,
    human: HumanRequestor | None = None,
) -> AuditMessage:
    """ITI-41, ITI-42: Export (R) on the sending side, Import (C) on the receiving side.

    ``submission_set_id`` is the SubmissionSet uniqueId.
    """
    row = _row(transaction, Kind.SUBMISSION)
    objects = [patient_object(patient_id)] if patient_id else []
    objects.append(
        ParticipantObjectIdentification(
            id_type=ObjectIdType.SUBMISSION_SET,
            object_id=submission_set_id,
            type_code=ParticipantObjectType.SYSTEM_OBJECT,
            role=ParticipantObjectRole.JOB,
        )
    )
    _, action = row.event(side)
    return _assemble(row, side, action, occasion, initiator, responder, human, objects)


def retrieve_event(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    documents: Iterable[DocumentRef],
    human: HumanRequestor | None = None,
    patient_ids: Iterable[str] = (),
) -> AuditMessage:
    """ITI-39, ITI-43: Import (C) for the requester, Export (R) for the responder.

    The responder is the Source. IPF writes one record per outcome when some
    documents were returned and others not; call this once per group.
    """
    row = _row(transaction, Kind.RETRIEVE)
    objects = [patient_object(p) for p in dict.fromkeys(patient_ids)]
    for doc in documents:
        objects.append(
            ParticipantObjectIdentification(
                id_type=ObjectIdType.REPORT_NUMBER,
                object_id=doc.document_id,
                type_code=ParticipantObjectType.SYSTEM_OBJECT,
                role=ParticipantObjectRole.REPORT,
                details=_detail(DetailType.REPOSITORY_UNIQUE_ID, doc.repository_id)
                + _detail(DetailType.HOME_COMMUNITY_ID, doc.home_community_id),
            )
        )
    _, action = row.event(side)
    return _assemble(row, side, action, occasion, initiator, responder, human, objects)


def patient_feed_events(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    trigger: str,
    patient_id: str | None,
    message_id: str | None,
    prior_patient_id: str | None = None,
    human: HumanRequestor | None = None,
    prior_patient_ids: Iterable[str] = (),
) -> tuple[AuditMessage, ...]:
    """ITI-8, ITI-44: EventID Patient Record (110110), one record per action.

    ``trigger`` is the HL7 v2 event (``A01``, ``A08``, ``A40``...) or the v3
    interaction (``PRPA_IN201304UV02``...). A merge yields two records: Delete
    for the retired ids (``prior_patient_id`` and/or ``prior_patient_ids``) and
    Update for the surviving ``patient_id``. ``message_id`` is MSH-10 (ITI-8) or
    the message id ``ext@root`` (ITI-44). A feed refused before its patient could
    be read (``patient_id`` None, outcome a failure) is recorded without one.
    """
    row = _row(transaction, Kind.PATIENT_FEED)
    priors = list(dict.fromkeys([*([prior_patient_id] if prior_patient_id else []),
                                 *prior_patient_ids]))
    failed = occasion.outcome != EventOutcome.SUCCESS
    records = []
    for action in feed_actions(trigger):
        if action is EventActionCode.DELETE:
            subjects = priors
        else:
            subjects = [patient_id] if patient_id else []
        if not subjects and not failed:
            what = "merged (prior)" if action is EventActionCode.DELETE else "fed"
            raise AuditError(f"{trigger} needs the {what} patient id")
        details = _detail(row.detail_message_id or "", message_id)
        patients = [patient_object(s, details) for s in subjects]
        records.append(
            _assemble(row, side, action, occasion, initiator, responder, human, patients)
        )
    return tuple(records)
