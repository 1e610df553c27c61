"""controlActProcess pieces shared by query responses: queryAck and detected issues.

ITI-55 (TF-2b 3.55.4.2.2.6/.7) tells the initiator why there is no match with
a ``reasonOf/detectedIssueEvent`` (code ActAdministrativeDetectedIssueCode):

* more attributes requested go in ``triggerFor/actOrderRequired/code``,
  code system 1.3.6.1.4.1.19376.1.2.27.1 (Table 3.55.4.2.2.6-1);
* error conditions go in ``mitigatedBy/detectedIssueManagement/code``,
  code system 1.3.6.1.4.1.19376.1.2.27.3 (Table 3.55.4.2.2.7-1).

Parsing also finds a detectedIssueEvent placed directly in controlActProcess,
as CONNECT's MPI answers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from profiles.hl7v3.codec import ii_to_xml, int_to_xml, parse_ii
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.errors import AckDetailCode, syntax
from profiles.hl7v3.xmlutil import attr, child, children, hl7, location, path, sub

ISSUE_EVENT_CODE = "ActAdministrativeDetectedIssueCode"
ISSUE_EVENT_CODE_SYSTEM = "2.16.840.1.113883.5.4"  # ActCode
MORE_ATTRIBUTES_CODE_SYSTEM = "1.3.6.1.4.1.19376.1.2.27.1"
ERROR_CODE_SYSTEM = "1.3.6.1.4.1.19376.1.2.27.3"


class QueryResponseCode(StrEnum):
    """queryAck/queryResponseCode: data found, nothing found, application or query error."""

    OK = "OK"
    NF = "NF"
    AE = "AE"
    QE = "QE"


class RequestedAttribute(StrEnum):
    """Demographics a responding gateway asks for to resolve a match (Table 3.55.4.2.2.6-1)."""

    ADMINISTRATIVE_GENDER = "LivingSubjectAdministrativeGenderRequested"
    PATIENT_TELECOM = "PatientTelecomRequested"
    PATIENT_ADDRESS = "PatientAddressRequested"
    BIRTH_PLACE_NAME = "LivingSubjectBirthPlaceNameRequested"
    BIRTH_PLACE_ADDRESS = "LivingSubjectBirthPlaceAddressRequested"
    MOTHERS_MAIDEN_NAME = "MothersMaidenNameRequested"


class IssueError(StrEnum):
    """Why a responding gateway cannot answer (Table 3.55.4.2.2.7-1)."""

    ANSWER_NOT_AVAILABLE = "AnswerNotAvailable"
    RESPONDER_BUSY = "ResponderBusy"
    INTERNAL_ERROR = "InternalError"


@dataclass(frozen=True)
class DetectedIssue:
    """One coded issue; its code system says whether it asks for data or reports an error."""

    code: str
    code_system: str

    @classmethod
    def requested(cls, attribute: RequestedAttribute) -> DetectedIssue:
        return cls(attribute.value, MORE_ATTRIBUTES_CODE_SYSTEM)

    @classmethod
    def error(cls, code: IssueError) -> DetectedIssue:
        return cls(code.value, ERROR_CODE_SYSTEM)

    @property
    def is_attribute_request(self) -> bool:
        return self.code_system == MORE_ATTRIBUTES_CODE_SYSTEM


def detected_issues_to_xml(issues: tuple[DetectedIssue, ...]) -> etree._Element | None:
    """One ``reasonOf`` holding every issue (errors as mitigatedBy, requests as triggerFor)."""
    if not issues:
        return None
    reason = hl7("reasonOf", {"typeCode": "RSON"})
    event = sub(reason, "detectedIssueEvent", {"classCode": "ALRT", "moodCode": "EVN"})
    sub(event, "code", {"code": ISSUE_EVENT_CODE, "codeSystem": ISSUE_EVENT_CODE_SYSTEM})
    for issue in issues:
        if not issue.is_attribute_request:
            mitigated = sub(event, "mitigatedBy", {"typeCode": "MITGT"})
            management = sub(mitigated, "detectedIssueManagement",
                             {"classCode": "ACT", "moodCode": "EVN"})
            sub(management, "code", {"code": issue.code, "codeSystem": issue.code_system})
    for issue in issues:
        if issue.is_attribute_request:
            trigger = sub(event, "triggerFor", {"typeCode": "TRIG"})
            order = sub(trigger, "actOrderRequired", {"classCode": "ACT", "moodCode": "RQO"})
            sub(order, "code", {"code": issue.code, "codeSystem": issue.code_system})
    return reason


def parse_detected_issues(control: etree._Element) -> tuple[DetectedIssue, ...]:
    events = [e for r in children(control, "reasonOf") for e in children(r, "detectedIssueEvent")]
    events += children(control, "detectedIssueEvent")
    found: list[DetectedIssue] = []
    for event in events:
        codes = [path(m, "detectedIssueManagement", "code") for m in children(event, "mitigatedBy")]
        codes += [path(t, "actOrderRequired", "code") for t in children(event, "triggerFor")]
        for code in codes:
            value = attr(code, "code")
            if value:
                found.append(DetectedIssue(value, attr(code, "codeSystem") or ""))
    return tuple(found)


@dataclass(frozen=True)
class QueryAck:
    query_id: II | None
    response_code: QueryResponseCode | None


def query_ack_to_xml(query_id: II | None, code: QueryResponseCode, *,
                     quantities: int | None = None) -> etree._Element:
    """queryAck; ``quantities`` adds total/current (= that) and remaining (0) result counts."""
    el = hl7("queryAck")
    if query_id is not None:
        el.append(ii_to_xml("queryId", query_id))
    failed = code in (QueryResponseCode.AE, QueryResponseCode.QE)
    status = "aborted" if failed else "deliveredResponse"
    sub(el, "statusCode", {"code": status})
    sub(el, "queryResponseCode", {"code": code.value})
    if quantities is not None:
        el.append(int_to_xml("resultTotalQuantity", quantities))
        el.append(int_to_xml("resultCurrentQuantity", quantities))
        el.append(int_to_xml("resultRemainingQuantity", 0))
    return el


def parse_query_ack(control: etree._Element) -> QueryAck:
    ack = child(control, "queryAck")
    if ack is None:
        return QueryAck(None, None)
    qid = child(ack, "queryId")
    code_el = child(ack, "queryResponseCode")
    raw = attr(code_el, "code")
    try:
        code = QueryResponseCode(raw) if raw else None
    except ValueError:
        raise syntax(AckDetailCode.VALUE_NOT_IN_CODE_SYSTEM, "unknown queryResponseCode",
                     location(code_el)) from None
    return QueryAck(parse_ii(qid) if qid is not None else None, code)


def control_act(trigger_event: str) -> etree._Element:
    """controlActProcess (classCode CACT, moodCode EVN) with its trigger event code."""
    el = hl7("controlActProcess", {"classCode": "CACT", "moodCode": "EVN"})
    sub(el, "code", {"code": trigger_event, "codeSystem": "2.16.840.1.113883.1.6"})
    return el


def check_trigger_event(control: etree._Element, trigger_event: str) -> None:
    """controlActProcess/code must name the trigger event (SYN105 absent, SYN111 other)."""
    code = child(control, "code")
    if code is None:
        raise syntax(AckDetailCode.REQUIRED_ELEMENT_MISSING, "controlActProcess/code is required",
                     location(control, "code"))
    if attr(code, "code") != trigger_event:
        raise syntax(AckDetailCode.NOT_FIXED_VALUE,
                     f"controlActProcess/code must be {trigger_event}", location(code))
