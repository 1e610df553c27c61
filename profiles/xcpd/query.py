"""PRPA_IN201305UV02 <-> PatientDiscoveryQuery, and the queryByParameter both messages carry.

Inbound queries are checked against ITI TF-2b 3.55.4.1 (the IHE Schematron
for ITI-55 says the same): queryByParameter statusCode ``new``,
responseModalityCode ``R``, responsePriorityCode ``I`` or ``D`` (then
respondTo/telecom is required), the sender's homeCommunityId in
sender/device/asAgent/representedOrganization/id/@root, a patient id or both
name and birth time, single-valued parameters given once, and the elements
ITI-55 removes from the HL7 model absent. The echo inside a response is read
without those checks.
"""

from __future__ import annotations

from lxml import etree

from profiles.hl7v3.codec import (
    ad_to_xml,
    checked_ts,
    code_to_xml,
    ii_to_xml,
    int_to_xml,
    parse_ad,
    parse_code,
    parse_ii,
    parse_int,
    parse_pn,
    parse_tel,
    parse_ts,
    pn_to_xml,
    tel_to_xml,
    ts_to_xml,
)
from profiles.hl7v3.control import check_trigger_event, control_act
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.errors import AckDetailCode, Hl7v3Error, syntax
from profiles.hl7v3.wrapper import parse_transmission, transmission_to_xml
from profiles.hl7v3.xmlutil import (
    attr,
    check_root,
    child,
    children,
    expect_code,
    hl7,
    location,
    message_root,
    path,
    required,
    required_attr,
    set_xsi_type,
    sub,
    text,
)
from profiles.xcpd.models import (
    PRPA_IN201305UV02,
    PatientDiscoveryQuery,
    QueryParameters,
    ResponsePriority,
)

TRIGGER_EVENT = "PRPA_TE201305UV02"
# Elements ITI-55 removes from the query (TF-2b 3.55.4.1.2): present means refused.
_OMITTED_QUERY = ("modifyCode", "responseElementGroupId", "executionAndDeliveryTime",
                  "sortControl", "initialQuantity", "initialQuantityCode")
_OMITTED_PARAMETERS = ("id", "patientStatusCode", "livingSubjectDeceasedTime",
                       "otherIDsScopingOrganization")


def _values(plist: etree._Element, name: str, strict: bool, *, single: bool = False
            ) -> list[etree._Element]:
    """``name/value`` elements; ``single``: at most one parameter with exactly one value."""
    params = children(plist, name)
    if strict and single and len(params) > 1:
        raise syntax(AckDetailCode.TOO_MANY_REPETITIONS, f"only one {name} is allowed",
                     location(params[1]))
    found = []
    for param in params:
        values = children(param, "value")
        if strict and single and len(values) != 1:
            required(param, "value")  # raises SYN105 (none) or SYN108 (several)
        found += values
    return found


def _checked_id(value: etree._Element) -> II | None:
    """livingSubjectId/value: root and extension, or a nullFlavor alone (then skipped)."""
    ii = parse_ii(value)
    if ii.null_flavor and not ii.root:
        return None
    required_attr(value, "root")
    required_attr(value, "extension")
    return ii


def parse_parameters(plist: etree._Element, *, strict: bool = False) -> QueryParameters:
    def values(name: str, single: bool = False) -> list[etree._Element]:
        return _values(plist, name, strict, single=single)

    genders = values("livingSubjectAdministrativeGender", single=True)
    births = values("livingSubjectBirthTime", single=True)
    mothers = values("mothersMaidenName", single=True)
    place_addr = values("livingSubjectBirthPlaceAddress", single=True)
    place_name = values("livingSubjectBirthPlaceName", single=True)
    for name in children(plist, "livingSubjectName"):
        if strict and len(children(name, "value")) != 1:
            required(name, "value")
    ids = values("livingSubjectId")
    place = parse_pn(place_name[0]) if place_name else None
    return QueryParameters(
        names=tuple(n for n in map(parse_pn, values("livingSubjectName")) if not n.is_empty),
        gender=parse_code(genders[0]) if genders else None,
        birth_time=(checked_ts if strict else parse_ts)(births[0]) if births else None,
        addresses=tuple(a for a in map(parse_ad, values("patientAddress")) if not a.is_empty),
        telecoms=tuple(t for t in map(parse_tel, values("patientTelecom"))
                       if t.value or t.null_flavor),
        ids=tuple(i for i in (_checked_id(v) if strict else parse_ii(v) for v in ids)
                  if i is not None),
        mothers_maiden_name=parse_pn(mothers[0]) if mothers else None,
        birth_place_address=parse_ad(place_addr[0]) if place_addr else None,
        birth_place_name=(place.text or " ".join(p.value for p in place.parts) or None)
        if place else None,
        principal_care_provider_ids=tuple(map(parse_ii, values("principalCareProviderId"))),
    )


def _check_omitted(el: etree._Element, names: tuple[str, ...]) -> None:
    for name in names:
        found = child(el, name)
        if found is not None:
            raise syntax(AckDetailCode.FORMAL_CONSTRAINT_VIOLATION,
                         f"{name} must be omitted in ITI-55", location(found))


def _match_criteria(qbp: etree._Element) -> tuple[str | None, int | None]:
    criteria = child(qbp, "matchCriterionList")
    if criteria is None:
        return None, None
    _check_omitted(criteria, ("id", "matchWeight"))
    algorithm = text(path(criteria, "matchAlgorithm", "value"))
    degree_el = path(criteria, "minimumDegreeMatch", "value")
    degree = parse_int(degree_el)
    if degree is not None and not 0 <= degree <= 100:
        raise syntax(AckDetailCode.FORMAL_CONSTRAINT_VIOLATION,
                     "minimumDegreeMatch must be between 0 and 100", location(degree_el))
    return algorithm, degree


def parse_patient_discovery_query(el: etree._Element, *, require_sender_community: bool = True
                                  ) -> PatientDiscoveryQuery:
    """Read an inbound ITI-55 request; any rule it breaks raises an Hl7v3Error.

    A partner must name its homeCommunityId; a local system asking the initiating
    gateway (``require_sender_community=False``) need not."""
    check_root(el, PRPA_IN201305UV02)
    transmission = parse_transmission(el, PRPA_IN201305UV02, strict=True)
    query_id: II | None = None
    try:
        if require_sender_community and transmission.sender.organization_id is None:
            raise syntax(AckDetailCode.REQUIRED_ELEMENT_MISSING,
                         "the sender's homeCommunityId is required",
                         location(el, "sender/device/asAgent/representedOrganization/id"))
        control = required(el, "controlActProcess")
        check_trigger_event(control, TRIGGER_EVENT)
        author = path(control, "authorOrPerformer", "assignedDevice", "id")
        qbp = required(control, "queryByParameter")
        query_id_el = required(qbp, "queryId")
        required_attr(query_id_el, "root")
        query_id = parse_ii(query_id_el)
        expect_code(required(qbp, "statusCode"), ("new",), "statusCode")
        expect_code(required(qbp, "responseModalityCode"), ("R",), "responseModalityCode")
        priority = ResponsePriority(expect_code(required(qbp, "responsePriorityCode"),
                                                ("I", "D"), "responsePriorityCode"))
        _check_omitted(qbp, _OMITTED_QUERY)
        algorithm, degree = _match_criteria(qbp)
        plist = required(qbp, "parameterList")
        _check_omitted(plist, _OMITTED_PARAMETERS)
        parameters = parse_parameters(plist, strict=True)
        if not any(i.root for i in parameters.ids) and not (
            parameters.names and parameters.birth_time
        ):
            raise syntax(AckDetailCode.FORMAL_CONSTRAINT_VIOLATION,
                         "a patient id, or both name and birth time, is required",
                         location(plist))
        if priority is ResponsePriority.DEFERRED and not transmission.respond_to:
            raise syntax(AckDetailCode.REQUIRED_ELEMENT_MISSING,
                         "a deferred query needs respondTo/telecom", location(el, "respondTo"))
    except Hl7v3Error as error:
        error.transmission, error.query_id = transmission, query_id
        raise
    return PatientDiscoveryQuery(
        transmission=transmission,
        query_id=query_id,
        parameters=parameters,
        response_priority=priority,
        assigning_authority=attr(author, "root"),
        match_algorithm=algorithm,
        minimum_degree_match=degree,
    )


# -- building --------------------------------------------------------------------------------


def _param(plist: etree._Element, name: str, semantics: str, *values: etree._Element) -> None:
    param = sub(plist, name)
    for value in values:
        param.append(value)
    sub(param, "semanticsText", None, semantics)


def parameters_to_xml(p: QueryParameters) -> etree._Element:
    """parameterList in schema order: one parameter per name and id, one for all addresses."""
    plist = hl7("parameterList")
    if p.gender is not None:
        _param(plist, "livingSubjectAdministrativeGender", "LivingSubject.administrativeGender",
               code_to_xml("value", p.gender))
    if p.birth_place_address is not None:
        _param(plist, "livingSubjectBirthPlaceAddress", "LivingSubject.BirthPlace.Addr",
               ad_to_xml("value", p.birth_place_address))
    if p.birth_place_name:
        _param(plist, "livingSubjectBirthPlaceName", "LivingSubject.BirthPlace.Place.Name",
               hl7("value", text_value=p.birth_place_name))
    if p.birth_time is not None:
        _param(plist, "livingSubjectBirthTime", "LivingSubject.birthTime",
               ts_to_xml("value", p.birth_time))
    for ii in p.ids:
        _param(plist, "livingSubjectId", "LivingSubject.id", ii_to_xml("value", ii))
    for name in p.names:
        _param(plist, "livingSubjectName", "LivingSubject.name",
               pn_to_xml("value", name, xsi_type="PN"))
    if p.mothers_maiden_name is not None:
        _param(plist, "mothersMaidenName", "Person.MothersMaidenName",
               pn_to_xml("value", p.mothers_maiden_name, xsi_type="PN"))
    if p.addresses:
        _param(plist, "patientAddress", "Patient.addr",
               *(ad_to_xml("value", a, xsi_type="AD") for a in p.addresses))
    if p.telecoms:
        _param(plist, "patientTelecom", "Patient.telecom",
               *(tel_to_xml("value", t) for t in p.telecoms))
    for ii in p.principal_care_provider_ids:
        _param(plist, "principalCareProviderId", "AssignedProvider.id", ii_to_xml("value", ii))
    return plist


def query_by_parameter_to_xml(query_id: II, parameters: QueryParameters,
                              priority: ResponsePriority, *, algorithm: str | None = None,
                              degree: int | None = None) -> etree._Element:
    qbp = hl7("queryByParameter")
    qbp.append(ii_to_xml("queryId", query_id))
    sub(qbp, "statusCode", {"code": "new"})
    sub(qbp, "responseModalityCode", {"code": "R"})
    sub(qbp, "responsePriorityCode", {"code": priority.value})
    if algorithm is not None or degree is not None:
        criteria = sub(qbp, "matchCriterionList")
        if algorithm is not None:
            value = hl7("value", text_value=algorithm)
            set_xsi_type(value, "ST")
            _param(criteria, "matchAlgorithm", "LivingSubject.matchAlgorithm", value)
        if degree is not None:
            _param(criteria, "minimumDegreeMatch", "Degree of match requested",
                   int_to_xml("value", degree, xsi_type=True))
    qbp.append(parameters_to_xml(parameters))
    return qbp


def patient_discovery_query_to_xml(q: PatientDiscoveryQuery) -> etree._Element:
    root = message_root(PRPA_IN201305UV02)
    transmission_to_xml(root, q.transmission)
    control = control_act(TRIGGER_EVENT)
    root.append(control)
    if q.assigning_authority:
        author = sub(control, "authorOrPerformer", {"typeCode": "AUT"})
        device = sub(author, "assignedDevice", {"classCode": "ASSIGNED"})
        sub(device, "id", {"root": q.assigning_authority})
    control.append(query_by_parameter_to_xml(
        q.query_id, q.parameters, q.response_priority,
        algorithm=q.match_algorithm, degree=q.minimum_degree_match,
    ))
    return root
