"""The patient role and its person, as PIXv3 feeds and XCPD/PIX answers carry them.

One model serves PRPA_MT201301/201302/201303UV02 (ITI-44 feeds),
PRPA_MT201310UV02 (ITI-55 matches) and PRPA_MT201304UV02 (ITI-45 answers):
their elements share names, only which ones may appear differs. Parsing is
``strict`` for feeds we store (a birth time must be a real HL7 TS) and lenient
for answers we read; empty ``<addr/>``, ``<telecom/>`` and ``<id/>`` that
peers send are dropped rather than kept as blank values.

Mother's maiden name travels as ``personalRelationship`` with code MTH
(RoleCode 2.16.840.1.113883.5.111) whose ``relationshipHolder1/name`` it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from profiles.hl7v3.codec import (
    ad_to_xml,
    bool_to_xml,
    checked_ts,
    code_to_xml,
    ii_to_xml,
    int_to_xml,
    parse_ad,
    parse_bool,
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
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, Code
from profiles.hl7v3.errors import Hl7v3Error
from profiles.hl7v3.xmlutil import attr, child, children, hl7, path, sub, text

MOTHER = Code("MTH", "2.16.840.1.113883.5.111", "PersonalRelationshipRoleType", "Mother")


@dataclass(frozen=True)
class OtherId:
    """An identifier in another domain (asOtherIDs), with its scoping organization."""

    id: II
    scoping_organization: str | None = None
    class_code: str = "PAT"


@dataclass(frozen=True)
class Person:
    names: tuple[PN, ...] = ()
    gender: Code | None = None
    birth_time: TS | None = None
    addresses: tuple[AD, ...] = ()
    telecoms: tuple[TEL, ...] = ()
    other_ids: tuple[OtherId, ...] = ()
    deceased: bool | None = None
    deceased_time: TS | None = None
    multiple_birth: bool | None = None
    multiple_birth_order: int | None = None
    marital_status: Code | None = None
    mothers_maiden_name: PN | None = None
    birth_place: AD | None = None
    birth_place_name: str | None = None


@dataclass(frozen=True)
class Patient:
    """A patient role: its ids in this registry (the first is the one that counts), the person."""

    ids: tuple[II, ...]
    person: Person = Person()
    status: str = "active"
    provider_organization: str | None = None

    @property
    def id(self) -> II:
        return self.ids[0]


def _ii_present(ii: II) -> bool:
    return any((ii.root, ii.extension, ii.null_flavor, ii.assigning_authority_name))


def _lenient_int(el: etree._Element | None, strict: bool) -> int | None:
    try:
        return parse_int(el)
    except Hl7v3Error:
        if strict:
            raise
        return None


def _time(el: etree._Element | None, strict: bool) -> TS | None:
    if el is None:
        return None
    return checked_ts(el) if strict else parse_ts(el)


def parse_other_ids(person: etree._Element) -> tuple[OtherId, ...]:
    found = []
    for other in children(person, "asOtherIDs"):
        scope = attr(path(other, "scopingOrganization", "id"), "root")
        for id_el in children(other, "id"):
            ii = parse_ii(id_el)
            if _ii_present(ii):
                found.append(OtherId(ii, scope, attr(other, "classCode") or "PAT"))
    return tuple(found)


def parse_person(el: etree._Element, *, strict: bool = False) -> Person:
    gender_el, marital_el = child(el, "administrativeGenderCode"), child(el, "maritalStatusCode")
    mother = None
    for rel in children(el, "personalRelationship"):
        if attr(child(rel, "code"), "code") == MOTHER.code:
            name = path(rel, "relationshipHolder1", "name")
            mother = parse_pn(name) if name is not None else None
    place = child(el, "birthPlace")
    place_addr = child(place, "addr")
    if place_addr is None:
        place_addr = path(place, "birthplace", "addr")
    return Person(
        names=tuple(n for n in map(parse_pn, children(el, "name")) if not n.is_empty),
        gender=parse_code(gender_el) if gender_el is not None else None,
        birth_time=_time(child(el, "birthTime"), strict),
        addresses=tuple(a for a in map(parse_ad, children(el, "addr")) if not a.is_empty),
        telecoms=tuple(t for t in map(parse_tel, children(el, "telecom"))
                       if t.value or t.null_flavor),
        other_ids=parse_other_ids(el),
        deceased=parse_bool(child(el, "deceasedInd")),
        deceased_time=_time(child(el, "deceasedTime"), strict),
        multiple_birth=parse_bool(child(el, "multipleBirthInd")),
        multiple_birth_order=_lenient_int(child(el, "multipleBirthOrderNumber"), strict),
        marital_status=parse_code(marital_el) if marital_el is not None else None,
        mothers_maiden_name=mother,
        birth_place=parse_ad(place_addr) if place_addr is not None else None,
        birth_place_name=text(path(place, "birthplace", "name")),
    )


def parse_patient(el: etree._Element, *, strict: bool = False) -> Patient:
    person_el = child(el, "patientPerson")
    return Patient(
        ids=tuple(ii for ii in map(parse_ii, children(el, "id")) if _ii_present(ii)),
        person=parse_person(person_el, strict=strict) if person_el is not None else Person(),
        status=attr(child(el, "statusCode"), "code") or "active",
        provider_organization=attr(path(el, "providerOrganization", "id"), "root"),
    )


# -- building --------------------------------------------------------------------------------


def _names(parent: etree._Element, names: tuple[PN, ...]) -> None:
    for name in names or (PN(null_flavor="NA"),):
        parent.append(pn_to_xml("name", name))


def other_ids_to_xml(parent: etree._Element, other_ids: tuple[OtherId, ...]) -> None:
    for other in other_ids:
        el = sub(parent, "asOtherIDs", {"classCode": other.class_code})
        el.append(ii_to_xml("id", other.id))
        scope = sub(el, "scopingOrganization", {"classCode": "ORG", "determinerCode": "INSTANCE"})
        sub(scope, "id", {"root": other.scoping_organization or other.id.root,
                          "nullFlavor": None if (other.scoping_organization or other.id.root)
                          else "UNK"})


def person_to_xml(person: Person, *, demographics: bool = True) -> etree._Element:
    """patientPerson; ``demographics=False`` writes only names and other ids (PIX answers)."""
    el = hl7("patientPerson", {"classCode": "PSN", "determinerCode": "INSTANCE"})
    _names(el, person.names)
    if not demographics:
        other_ids_to_xml(el, person.other_ids)
        return el
    for tel in person.telecoms:
        el.append(tel_to_xml("telecom", tel))
    if person.gender is not None:
        el.append(code_to_xml("administrativeGenderCode", person.gender))
    if person.birth_time is not None:
        el.append(ts_to_xml("birthTime", person.birth_time))
    if person.deceased is not None:
        el.append(bool_to_xml("deceasedInd", person.deceased))
    if person.deceased_time is not None:
        el.append(ts_to_xml("deceasedTime", person.deceased_time))
    if person.multiple_birth is not None:
        el.append(bool_to_xml("multipleBirthInd", person.multiple_birth))
    if person.multiple_birth_order is not None:
        el.append(int_to_xml("multipleBirthOrderNumber", person.multiple_birth_order))
    for ad in person.addresses:
        el.append(ad_to_xml("addr", ad))
    if person.marital_status is not None:
        el.append(code_to_xml("maritalStatusCode", person.marital_status))
    other_ids_to_xml(el, person.other_ids)
    if person.mothers_maiden_name is not None:
        rel = sub(el, "personalRelationship", {"classCode": "PRS"})
        rel.append(code_to_xml("code", MOTHER))
        holder = sub(rel, "relationshipHolder1", {"classCode": "PSN", "determinerCode": "INSTANCE"})
        holder.append(pn_to_xml("name", person.mothers_maiden_name))
    if person.birth_place is not None or person.birth_place_name:
        place = sub(el, "birthPlace", {"classCode": "BIRTHPL"})
        if person.birth_place is not None:
            place.append(ad_to_xml("addr", person.birth_place))
        if person.birth_place_name:
            named = sub(place, "birthplace", {"classCode": "PLC", "determinerCode": "INSTANCE"})
            sub(named, "name", None, person.birth_place_name)
    return el


def patient_to_xml(patient: Patient, *, demographics: bool = True,
                   after_person: tuple[etree._Element, ...] = ()) -> etree._Element:
    """patient (classCode PAT); ``after_person`` are appended last (e.g. subjectOf1)."""
    el = hl7("patient", {"classCode": "PAT"})
    for ii in patient.ids:
        el.append(ii_to_xml("id", ii))
    sub(el, "statusCode", {"code": patient.status})
    el.append(person_to_xml(patient.person, demographics=demographics))
    if patient.provider_organization:
        org = sub(el, "providerOrganization", {"classCode": "ORG", "determinerCode": "INSTANCE"})
        sub(org, "id", {"root": patient.provider_organization})
        sub(org, "contactParty", {"classCode": "CON"})  # required by COCT_MT150003UV03
    for extra in after_person:
        el.append(extra)
    return el
