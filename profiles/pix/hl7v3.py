"""PIXv3: ITI-44 Patient Identity Feed HL7 V3 and ITI-45 PIXV3 Query (ITI TF-2b 3.44, 3.45).

ITI-44 feeds (PRPA_IN201301UV02 add, 201302 revise, 201304 merge) become a
``PatientIdentityFeed`` and are acknowledged with MCCI_IN000002UV01
(``profiles.hl7v3.ack``). A feed carries exactly one subject with an active
registrationEvent; a merge names the identifiers it makes obsolete in
``replacementOf/priorRegistration`` and only a merge may.

ITI-45 queries (PRPA_IN201309UV02) become a ``PixQuery``; the answer
(PRPA_IN201310UV02) is a ``PixQueryResponse``, per TF-2b 3.45.4.2.3:

* identifiers found: AA / OK, one registrationEvent listing them;
* domain known, patient not: AA / NF, no registrationEvent;
* a domain not recognised (the patient's, or a requested data source): AE / AE
  with acknowledgementDetail code 204 (Unknown Key Identifier, HL7 table 0357)
  located at the offending ``value`` element (``PixQuery.check_domains``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lxml import etree

from profiles.errors import ErrorDetail, GatewayError, Severity
from profiles.hl7v3.ack import ApplicationAcknowledgement, error_acknowledgement
from profiles.hl7v3.codec import ii_to_xml, parse_ii
from profiles.hl7v3.control import (
    QueryResponseCode,
    check_trigger_event,
    control_act,
    parse_query_ack,
    query_ack_to_xml,
)
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.errors import AckDetailCode, Hl7v3Error, UnknownKeyIdentifier, syntax
from profiles.hl7v3.patient import OtherId, Patient, Person, parse_patient, patient_to_xml
from profiles.hl7v3.wrapper import (
    Acknowledgement,
    AckType,
    Device,
    TransmissionWrapper,
    acknowledgement_to_xml,
    details_of,
    parse_acknowledgement,
    parse_transmission,
    reply_to,
    transmission_to_xml,
)
from profiles.hl7v3.xmlutil import (
    HL7,
    attr,
    check_root,
    child,
    children,
    expect_code,
    hl7,
    is_hl7,
    local,
    location,
    message_root,
    path,
    required,
    required_attr,
    sub,
)

PRPA_IN201309UV02 = "PRPA_IN201309UV02"
PRPA_IN201310UV02 = "PRPA_IN201310UV02"
_PARAMETERS = f"/{PRPA_IN201309UV02}/controlActProcess/queryByParameter/parameterList"
PATIENT_IDENTIFIER_LOCATION = f"{_PARAMETERS}/patientIdentifier/value"


class FeedKind(StrEnum):
    """The ITI-44 interaction; its trigger event is the same name with TE for IN."""

    ADD = "PRPA_IN201301UV02"
    REVISE = "PRPA_IN201302UV02"
    MERGE = "PRPA_IN201304UV02"

    @property
    def trigger_event(self) -> str:
        return self.value.replace("_IN", "_TE")


@dataclass(frozen=True)
class PatientIdentityFeed:
    kind: FeedKind
    transmission: TransmissionWrapper
    patient: Patient
    custodian: str | None = None
    replacement_of: tuple[II, ...] = ()  # merge: the obsolete ids merged into ``patient``


def _check_name(person_el: etree._Element) -> None:
    names = children(person_el, "name")
    if not any(len(n) or (n.text or "").strip() for n in names):
        raise syntax(AckDetailCode.REQUIRED_ELEMENT_MISSING, "patientPerson/name needs a value",
                     location(names[0] if names else person_el, *([] if names else ["name"])))


def _replaced_ids(event: etree._Element, kind: FeedKind) -> tuple[II, ...]:
    replacement = children(event, "replacementOf")
    if kind is not FeedKind.MERGE:
        if replacement:
            raise syntax(AckDetailCode.FORMAL_CONSTRAINT_VIOLATION,
                         "only a merge may carry replacementOf", location(replacement[0]))
        return ()
    prior = required(required(event, "replacementOf"), "priorRegistration")
    expect_code(required(prior, "statusCode"), ("obsolete",), "priorRegistration/statusCode")
    role = required(required(prior, "subject1"), "priorRegisteredRole")
    ids = children(role, "id")
    if not ids:
        required(role, "id")
    for id_el in ids:
        required_attr(id_el, "root")
    return tuple(map(parse_ii, ids))


def parse_patient_identity_feed(el: etree._Element) -> PatientIdentityFeed:
    """Read an inbound ITI-44 add, revise or merge; any broken rule raises an Hl7v3Error."""
    if not is_hl7(el) or etree.QName(el).namespace != HL7 or local(el) not in set(FeedKind):
        check_root(el, FeedKind.ADD.value)  # raises: not a feed at all
    kind = FeedKind(local(el))
    transmission = parse_transmission(el, kind.value, strict=True)
    try:
        control = required(el, "controlActProcess")
        check_trigger_event(control, kind.trigger_event)
        subjects = children(control, "subject")
        if len(subjects) > 1:
            raise syntax(AckDetailCode.TOO_MANY_ASSOCIATION_REPETITIONS,
                         "a feed carries exactly one subject", location(subjects[1]))
        event = required(required(control, "subject"), "registrationEvent")
        expect_code(required(event, "statusCode"), ("active",), "registrationEvent/statusCode")
        patient_el = required(required(event, "subject1"), "patient")
        if not children(patient_el, "id"):
            required(patient_el, "id")
        _check_name(required(patient_el, "patientPerson"))
        patient = parse_patient(patient_el, strict=True)
        replaced = _replaced_ids(event, kind)
    except Hl7v3Error as error:
        error.transmission = transmission
        raise
    return PatientIdentityFeed(
        kind, transmission, patient,
        custodian=attr(path(event, "custodian", "assignedEntity", "id"), "root"),
        replacement_of=replaced,
    )


def feed_acknowledgement(feed: PatientIdentityFeed, *, sender: Device | None = None,
                         message_id: II | None = None, now: datetime | None = None
                         ) -> ApplicationAcknowledgement:
    """The AA answer to an accepted feed (serialise with ``mcci_acknowledgement_to_xml``)."""
    return ApplicationAcknowledgement.accept(feed.transmission, sender=sender,
                                             message_id=message_id, now=now)


def feed_error_acknowledgement(feed: PatientIdentityFeed | None, error: GatewayError, *,
                               sender: Device | None = None, message_id: II | None = None,
                               now: datetime | None = None) -> etree._Element:
    """MCCI_IN000002UV01 AE for a feed we refuse."""
    return error_acknowledgement(feed, error, sender=sender, message_id=message_id, now=now)


# -- ITI-45 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixQuery:
    transmission: TransmissionWrapper
    query_id: II
    patient_id: II
    data_sources: tuple[str, ...] = ()  # requested domains (assigning authority OIDs)

    def data_source_location(self, index: int) -> str:
        step = f"dataSource[{index + 1}]" if len(self.data_sources) > 1 else "dataSource"
        return f"{_PARAMETERS}/{step}/value"

    def check_domains(self, known_domains: Collection[str]) -> None:
        """Raise 204 Unknown Key Identifier for an unknown patient domain and data sources."""
        details = []
        if self.patient_id.root not in known_domains:
            details.append(ErrorDetail(UnknownKeyIdentifier.code,
                                       "unknown patient identifier domain", Severity.ERROR,
                                       PATIENT_IDENTIFIER_LOCATION))
        for i, source in enumerate(self.data_sources):
            if source not in known_domains:
                details.append(ErrorDetail(UnknownKeyIdentifier.code, "unknown data source",
                                           Severity.ERROR, self.data_source_location(i)))
        if details:
            raise UnknownKeyIdentifier(details[0].context, location=details[0].location,
                                       details=details)


def _single_value(param: etree._Element) -> etree._Element:
    value = required(param, "value")
    required_attr(value, "root")
    return value


def parse_pix_query(el: etree._Element) -> PixQuery:
    """Read an inbound ITI-45 query; any broken rule raises an Hl7v3Error."""
    check_root(el, PRPA_IN201309UV02)
    transmission = parse_transmission(el, PRPA_IN201309UV02, strict=True)
    query_id: II | None = None
    try:
        control = required(el, "controlActProcess")
        check_trigger_event(control, "PRPA_TE201309UV02")
        qbp = required(control, "queryByParameter")
        query_id_el = required(qbp, "queryId")
        required_attr(query_id_el, "root")
        query_id = parse_ii(query_id_el)
        expect_code(required(qbp, "statusCode"), ("new",), "statusCode")
        expect_code(required(qbp, "responsePriorityCode"), ("I",), "responsePriorityCode")
        plist = required(qbp, "parameterList")
        patient_value = _single_value(required(plist, "patientIdentifier"))
        required_attr(patient_value, "extension")
        sources = []
        for source in children(plist, "dataSource"):
            value = _single_value(source)
            if attr(value, "extension"):
                raise syntax(AckDetailCode.FORMAL_CONSTRAINT_VIOLATION,
                             "dataSource/value names a domain: root only", location(value))
            sources.append(attr(value, "root") or "")
    except Hl7v3Error as error:
        error.transmission, error.query_id = transmission, query_id
        raise
    return PixQuery(transmission, query_id, parse_ii(patient_value), tuple(sources))


@dataclass(frozen=True)
class PixQueryResponse:
    transmission: TransmissionWrapper
    acknowledgement: Acknowledgement
    query_response_code: QueryResponseCode | None
    query_id: II | None = None
    identifiers: tuple[II, ...] = ()  # the patient's ids; the first is patient/id
    custodian: str | None = None  # registrationEvent custodian (defaults to the first id's root)
    patient_id: II | None = None  # echoed query parameters
    data_sources: tuple[str, ...] = ()

    @classmethod
    def _answer(cls, query: PixQuery | None, ack: AckType, code: QueryResponseCode, *,
                identifiers: tuple[II, ...] = (), error: GatewayError | None = None,
                sender: Device | None, message_id: II | None, now: datetime | None
                ) -> PixQueryResponse:
        wrapper = query.transmission if query else getattr(error, "transmission", None)
        return cls(
            transmission=reply_to(wrapper, PRPA_IN201310UV02, sender=sender,
                                  message_id=message_id, now=now),
            acknowledgement=Acknowledgement(ack, wrapper.id if wrapper else None,
                                            details_of(error) if error else ()),
            query_response_code=code,
            query_id=query.query_id if query else getattr(error, "query_id", None),
            identifiers=identifiers,
            custodian=identifiers[0].root if identifiers else None,
            patient_id=query.patient_id if query else None,
            data_sources=query.data_sources if query else (),
        )

    @classmethod
    def found(cls, query: PixQuery, identifiers: Iterable[II], *, sender: Device | None = None,
              message_id: II | None = None, now: datetime | None = None) -> PixQueryResponse:
        """AA/OK with the identifiers (AA/NF when there are none)."""
        ids = tuple(identifiers)
        code = QueryResponseCode.OK if ids else QueryResponseCode.NF
        return cls._answer(query, AckType.AA, code, identifiers=ids, sender=sender,
                           message_id=message_id, now=now)

    @classmethod
    def unknown_patient(cls, query: PixQuery, *, sender: Device | None = None,
                        message_id: II | None = None, now: datetime | None = None
                        ) -> PixQueryResponse:
        """The domain is known, the patient is not: AA/NF."""
        return cls.found(query, (), sender=sender, message_id=message_id, now=now)

    @classmethod
    def failure(cls, query: PixQuery | None, error: GatewayError, *,
                sender: Device | None = None, message_id: II | None = None,
                now: datetime | None = None) -> PixQueryResponse:
        """AE/AE carrying the error's acknowledgementDetails (e.g. 204 at the bad value)."""
        return cls._answer(query, AckType.AE, QueryResponseCode.AE, error=error, sender=sender,
                           message_id=message_id, now=now)


def _registration(r: PixQueryResponse) -> etree._Element:
    first = r.identifiers[0]
    patient = Patient(
        ids=(first,),
        person=Person(other_ids=tuple(OtherId(ii, ii.root) for ii in r.identifiers[1:])),
        provider_organization=first.root,
    )
    subject = hl7("subject", {"typeCode": "SUBJ"})
    event = sub(subject, "registrationEvent", {"classCode": "REG", "moodCode": "EVN"})
    sub(event, "id", {"nullFlavor": "NA"})
    sub(event, "statusCode", {"code": "active"})
    sub(event, "subject1", {"typeCode": "SBJ"}).append(patient_to_xml(patient, demographics=False))
    entity = sub(sub(event, "custodian", {"typeCode": "CST"}), "assignedEntity",
                 {"classCode": "ASSIGNED"})
    sub(entity, "id", {"root": r.custodian or first.root})
    return subject


def pix_query_response_to_xml(r: PixQueryResponse) -> etree._Element:
    root = message_root(PRPA_IN201310UV02)
    transmission_to_xml(root, r.transmission)
    root.append(acknowledgement_to_xml(r.acknowledgement))
    control = control_act("PRPA_TE201310UV02")
    root.append(control)
    if r.identifiers:
        control.append(_registration(r))
    control.append(query_ack_to_xml(r.query_id, r.query_response_code or QueryResponseCode.AE))
    if r.query_id is not None and r.patient_id is not None:
        qbp = sub(control, "queryByParameter")
        qbp.append(ii_to_xml("queryId", r.query_id))
        sub(qbp, "statusCode", {"code": "new"})
        sub(qbp, "responsePriorityCode", {"code": "I"})
        plist = sub(qbp, "parameterList")
        for source in r.data_sources:
            param = sub(plist, "dataSource")
            sub(param, "value", {"root": source})
            sub(param, "semanticsText", None, "DataSource.id")
        param = sub(plist, "patientIdentifier")
        param.append(ii_to_xml("value", r.patient_id))
        sub(param, "semanticsText", None, "Patient.id")
    return root


def parse_pix_query_response(el: etree._Element) -> PixQueryResponse:
    """Read a PIX manager's answer (lenient; the acknowledgement is required)."""
    check_root(el, PRPA_IN201310UV02)
    ack = parse_acknowledgement(el)
    control = required(el, "controlActProcess")
    identifiers: list[II] = []
    custodian = None
    events = [e for s in children(control, "subject") for e in children(s, "registrationEvent")]
    for event in events:
        patient_el = path(event, "subject1", "patient")
        if patient_el is not None:
            patient = parse_patient(patient_el)
            identifiers += [*patient.ids, *(o.id for o in patient.person.other_ids)]
        custodian = custodian or attr(path(event, "custodian", "assignedEntity", "id"), "root")
    query_ack = parse_query_ack(control)
    plist = path(control, "queryByParameter", "parameterList")
    patient_value = path(plist, "patientIdentifier", "value")
    return PixQueryResponse(
        transmission=parse_transmission(el, PRPA_IN201310UV02, strict=False),
        acknowledgement=ack,
        query_response_code=query_ack.response_code,
        query_id=query_ack.query_id,
        identifiers=tuple(identifiers),
        custodian=custodian,
        patient_id=parse_ii(patient_value) if patient_value is not None else None,
        data_sources=tuple(attr(child(s, "value"), "root") or ""
                           for s in children(plist, "dataSource")),
    )


def query_error_acknowledgement(query: PixQuery | None, error: GatewayError, *,
                                sender: Device | None = None, message_id: II | None = None,
                                now: datetime | None = None) -> etree._Element:
    """The PRPA_IN201310UV02 AE answer for ``error`` (TF-2b 3.45.4.2.3)."""
    return pix_query_response_to_xml(PixQueryResponse.failure(
        query, error, sender=sender, message_id=message_id, now=now))
