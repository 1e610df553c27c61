"""ITI-55 Cross Gateway Patient Discovery messages as models (ITI TF-2b 3.55).

``PatientDiscoveryQuery`` is PRPA_IN201305UV02; ``PatientDiscoveryResponse``
is PRPA_IN201306UV02. The response's constructors encode TF-2b 3.55.4.2.3:

=================================  ===============  ================  =====================
case                               acknowledgement  queryResponseCode  content
=================================  ===============  ================  =====================
1, 2: one or more matches          AA               OK                one subject per match
3: ambiguous, more data would help AA               NF                triggerFor requested
                                                                      attributes (27.1)
4: no match                        AA               NF                nothing
5: cannot answer                   AE               AE                mitigatedBy error
                                                                      (27.3), details
=================================  ===============  ================  =====================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from profiles.errors import GatewayError
from profiles.hl7v3.control import DetectedIssue, IssueError, QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, Code
from profiles.hl7v3.patient import Patient
from profiles.hl7v3.wrapper import (
    Acknowledgement,
    AcknowledgementDetail,
    AckType,
    Device,
    TransmissionWrapper,
    details_of,
    new_message_id,
    new_transmission,
    reply_to,
)

PRPA_IN201305UV02 = "PRPA_IN201305UV02"
PRPA_IN201306UV02 = "PRPA_IN201306UV02"
HEALTH_DATA_LOCATOR_CODE_SYSTEM = "1.3.6.1.4.1.19376.1.2.27.2"


class ResponsePriority(StrEnum):
    IMMEDIATE = "I"
    DEFERRED = "D"


@dataclass(frozen=True)
class QueryParameters:
    """queryByParameter/parameterList: the demographics (and ids) to match on."""

    names: tuple[PN, ...] = ()
    gender: Code | None = None
    birth_time: TS | None = None
    addresses: tuple[AD, ...] = ()
    telecoms: tuple[TEL, ...] = ()
    ids: tuple[II, ...] = ()  # livingSubjectId: the initiator's id(s) of the patient
    mothers_maiden_name: PN | None = None
    birth_place_address: AD | None = None
    birth_place_name: str | None = None
    principal_care_provider_ids: tuple[II, ...] = ()


@dataclass(frozen=True)
class PatientDiscoveryQuery:
    transmission: TransmissionWrapper
    query_id: II
    parameters: QueryParameters
    response_priority: ResponsePriority = ResponsePriority.IMMEDIATE
    # authorOrPerformer/assignedDevice/id/@root: the initiator's patient id assigning authority
    assigning_authority: str | None = None
    match_algorithm: str | None = None
    minimum_degree_match: int | None = None

    @classmethod
    def new(cls, parameters: QueryParameters, *, sender: Device, receiver: Device,
            respond_to: str | None = None, assigning_authority: str | None = None,
            query_id: II | None = None, message_id: II | None = None,
            now: datetime | None = None) -> PatientDiscoveryQuery:
        """A query to send; ``respond_to`` makes it deferred. ``sender`` names our community."""
        return cls(
            transmission=new_transmission(PRPA_IN201305UV02, sender=sender, receiver=receiver,
                                          respond_to=respond_to, message_id=message_id, now=now),
            query_id=query_id or new_message_id(),
            parameters=parameters,
            response_priority=(ResponsePriority.DEFERRED if respond_to
                               else ResponsePriority.IMMEDIATE),
            assigning_authority=assigning_authority,
        )

    @property
    def sender_home_community_id(self) -> str | None:
        return self.transmission.sender.home_community_id

    @property
    def respond_to(self) -> str | None:
        """Where a deferred answer goes (respondTo/telecom/@value)."""
        return self.transmission.respond_to

    @property
    def message_id(self) -> II:
        return self.transmission.id


@dataclass(frozen=True)
class PatientMatch:
    """One registrationEvent: a patient held by community ``home_community_id``."""

    patient: Patient
    home_community_id: str
    health_data_locator: bool = False  # SupportsHealthDataLocator vs NotHealthDataLocator
    score: int | None = None  # queryMatchObservation value (0-100)


@dataclass(frozen=True)
class PatientDiscoveryResponse:
    transmission: TransmissionWrapper
    acknowledgement: Acknowledgement
    query_response_code: QueryResponseCode | None
    query_id: II | None = None
    matches: tuple[PatientMatch, ...] = ()
    detected_issues: tuple[DetectedIssue, ...] = ()
    query: QueryParameters | None = None  # the echoed parameterList
    response_priority: ResponsePriority = ResponsePriority.IMMEDIATE

    @property
    def requested_attributes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.detected_issues if i.is_attribute_request)

    @property
    def errors(self) -> tuple[AcknowledgementDetail, ...]:
        return self.acknowledgement.details

    # -- TF-2b 3.55.4.2.3 cases, answering ``request`` ---------------------------------------

    @classmethod
    def _answer(cls, request: PatientDiscoveryQuery | None, ack: AckType,
                code: QueryResponseCode, *, matches: tuple[PatientMatch, ...] = (),
                issues: tuple[DetectedIssue, ...] = (),
                details: tuple[AcknowledgementDetail, ...] = (), sender: Device | None,
                message_id: II | None, now: datetime | None,
                transmission: TransmissionWrapper | None = None,
                query_id: II | None = None) -> PatientDiscoveryResponse:
        wrapper = request.transmission if request else transmission
        return cls(
            transmission=reply_to(wrapper, PRPA_IN201306UV02, sender=sender,
                                  message_id=message_id, now=now),
            acknowledgement=Acknowledgement(ack, wrapper.id if wrapper else None, details),
            query_response_code=code,
            query_id=request.query_id if request else query_id,
            matches=matches,
            detected_issues=issues,
            query=request.parameters if request else None,
            response_priority=(request.response_priority if request
                               else ResponsePriority.IMMEDIATE),
        )

    @classmethod
    def matched(cls, request: PatientDiscoveryQuery, matches: Iterable[PatientMatch], *,
                sender: Device | None = None, message_id: II | None = None,
                now: datetime | None = None) -> PatientDiscoveryResponse:
        """Cases 1 and 2 (AA/OK); with no matches at all this is case 4 (AA/NF)."""
        found = tuple(matches)
        code = QueryResponseCode.OK if found else QueryResponseCode.NF
        return cls._answer(request, AckType.AA, code, matches=found, sender=sender,
                           message_id=message_id, now=now)

    @classmethod
    def no_match(cls, request: PatientDiscoveryQuery, *, sender: Device | None = None,
                 message_id: II | None = None, now: datetime | None = None
                 ) -> PatientDiscoveryResponse:
        """Case 4: AA/NF, nothing else."""
        return cls.matched(request, (), sender=sender, message_id=message_id, now=now)

    @classmethod
    def more_attributes_requested(cls, request: PatientDiscoveryQuery,
                                  attributes: Iterable[RequestedAttribute], *,
                                  sender: Device | None = None, message_id: II | None = None,
                                  now: datetime | None = None) -> PatientDiscoveryResponse:
        """Case 3: AA/NF naming the demographics that would let us decide."""
        issues = tuple(DetectedIssue.requested(a) for a in attributes)
        return cls._answer(request, AckType.AA, QueryResponseCode.NF, issues=issues,
                           sender=sender, message_id=message_id, now=now)

    @classmethod
    def failure(cls, request: PatientDiscoveryQuery | None, error: GatewayError | None = None,
                *, issue: IssueError | None = IssueError.INTERNAL_ERROR,
                sender: Device | None = None,
                message_id: II | None = None, now: datetime | None = None
                ) -> PatientDiscoveryResponse:
        """Case 5: AE/AE with the 27.3 error code and the error's acknowledgementDetails.

        Without a request model the wrapper and query id a failed parse attached
        to ``error`` are used, so the answer still names the message it refuses.
        """
        return cls._answer(
            request, AckType.AE, QueryResponseCode.AE,
            issues=(DetectedIssue.error(issue),) if issue else (),
            details=details_of(error) if error is not None else (),
            sender=sender, message_id=message_id, now=now,
            transmission=getattr(error, "transmission", None),
            query_id=getattr(error, "query_id", None),
        )
