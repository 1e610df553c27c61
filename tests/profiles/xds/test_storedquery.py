"""Stored query parameters: encodings, OR/AND, required and one-of rules, error codes."""

from __future__ import annotations

import pytest
from lxml import etree

from profiles.errors import GatewayError
from profiles.xds import codes as c
from profiles.xds.storedquery import (
    QUERY_ID_OF,
    SPECS,
    QueryName,
    ReturnType,
    build,
    parse_adhoc_query_request,
)
from tests.profiles.xds.conftest import load_element

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
PID = "'P1^^^&1.2.3&ISO'"
NIST = "messages/nist-toolkit/"


def request(query: QueryName | str, slots: list[tuple[str, list[str]]], **attrs) -> etree._Element:
    qid = QUERY_ID_OF[query] if isinstance(query, QueryName) else query
    el = etree.Element(f"{{{c.QUERY}}}AdhocQueryRequest", nsmap={"query": c.QUERY, "rim": c.RIM})
    etree.SubElement(el, f"{{{c.QUERY}}}ResponseOption",
                     returnType=attrs.pop("return_type", "LeafClass"), returnComposedObjects="true")
    aq = etree.SubElement(el, f"{{{c.RIM}}}AdhocQuery", id=qid, **attrs)
    for name, values in slots:
        vl = etree.SubElement(etree.SubElement(aq, f"{{{c.RIM}}}Slot", name=name),
                              f"{{{c.RIM}}}ValueList")
        for v in values:
            etree.SubElement(vl, f"{{{c.RIM}}}Value").text = v
    return el


def codes_of(error: GatewayError) -> list[str]:
    return [d.code for d in error.details]


def find(*extra: tuple[str, list[str]]):
    base = [("$XDSDocumentEntryPatientId", [PID]), ("$XDSDocumentEntryStatus", [f"('{APPROVED}')"])]
    return parse_adhoc_query_request(request(QueryName.FIND_DOCUMENTS, [*base, *extra]))


def test_every_stored_query_of_iti18_is_known():
    assert len(SPECS) == 14 and set(SPECS) == set(QueryName)


def test_strings_lists_codes_and_times_decode():
    q = find(
        ("$XDSDocumentEntryClassCode", ["('a^^1.2', 'b^^1.3')"]),
        ("$XDSDocumentEntryCreationTimeFrom", ["20040101"]),
        ("$XDSDocumentEntryCreationTimeTo", ["'2005'"]),
        ("$XDSDocumentEntryAuthorPerson", ["'%Smitty%'", "'O''Hara'"]),
    )
    assert q.one("$XDSDocumentEntryPatientId") == "P1^^^&1.2.3&ISO"
    assert q.values("$XDSDocumentEntryStatus") == (APPROVED,)
    assert q.values("$XDSDocumentEntryClassCode") == (("a", "1.2"), ("b", "1.3"))
    assert q.one("$XDSDocumentEntryCreationTimeFrom") == "20040101"
    assert q.one("$XDSDocumentEntryCreationTimeTo") == "2005"
    assert q.values("$XDSDocumentEntryAuthorPerson") == ("%Smitty%", "O'Hara")
    assert q.return_type is ReturnType.LEAF_CLASS and q.home is None


def test_repeated_code_slots_are_and_groups():
    q = find(
        ("$XDSDocumentEntryEventCodeList", ["('e1^^s', 'e2^^s')"]),
        ("$XDSDocumentEntryEventCodeList", ["('e3^^s')"]),
    )
    assert q.groups("$XDSDocumentEntryEventCodeList") == (
        (("e1", "s"), ("e2", "s")),
        (("e3", "s"),),
    )


def test_repeating_a_slot_that_is_not_and_able_is_param_number():
    with pytest.raises(GatewayError) as e:
        find(("$XDSDocumentEntryClassCode", ["('a^^s')"]),
             ("$XDSDocumentEntryClassCode", ["('b^^s')"]))
    assert codes_of(e.value) == ["XDSStoredQueryParamNumber"]


def test_two_patient_ids_are_param_number():
    el = request(QueryName.FIND_DOCUMENTS, [
        ("$XDSDocumentEntryPatientId", ["('A^^^&1.2&ISO','B^^^&1.2&ISO')"]),
        ("$XDSDocumentEntryStatus", [f"('{APPROVED}')"]),
    ])
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(el)
    assert codes_of(e.value) == ["XDSStoredQueryParamNumber"]


def test_missing_required_parameters_are_each_reported():
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(request(QueryName.FIND_DOCUMENTS, []))
    assert codes_of(e.value) == ["XDSStoredQueryMissingParam"] * 2


def test_choice_needs_exactly_one():
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(request(QueryName.GET_DOCUMENTS, []))
    assert codes_of(e.value) == ["XDSStoredQueryMissingParam"]
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(request(QueryName.GET_DOCUMENTS, [
            ("$XDSDocumentEntryUniqueId", ["('1.2')"]),
            ("$XDSDocumentEntryEntryUUID", ["('urn:uuid:x')"]),
        ]))
    assert codes_of(e.value) == ["XDSStoredQueryParamNumber"]


def test_unknown_query_id():
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(request("urn:uuid:00000000-0000-0000-0000-000000000000", []))
    assert codes_of(e.value) == ["XDSUnknownStoredQuery"]


@pytest.mark.parametrize("value", [
    "P1^^^&1.2.3&ISO",  # not quoted
    "'P1^^^&1.2.3&ISO",  # no closing quote
    "'P1^^^&1.2.3&ISO' or 1=1",  # text after the quote
    "'593603^^^&2.16.756.5.33.2.5.1.5.1&ISO''%20and%20611%3d611--%20",  # IPF's injection
])
def test_malformed_values_are_refused_not_guessed(value):
    el = request(QueryName.FIND_DOCUMENTS, [
        ("$XDSDocumentEntryPatientId", [value]),
        ("$XDSDocumentEntryStatus", [f"('{APPROVED}')"]),
    ])
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(el)
    assert codes_of(e.value) == ["XDSRegistryError"]


@pytest.mark.parametrize("slot,value", [
    ("$XDSDocumentEntryClassCode", "('value^^')"),
    ("$XDSDocumentEntryClassCode", "('a^^s',)"),
    ("$XDSDocumentEntryCreationTimeFrom", "2004-01-01"),
    ("$XDSDocumentEntryCreationTimeFrom", "20041301"),
])
def test_bad_codes_lists_and_times(slot, value):
    with pytest.raises(GatewayError) as e:
        find((slot, [value]))
    assert codes_of(e.value) == ["XDSRegistryError"]


def test_unsupported_return_type():
    el = request(QueryName.FIND_DOCUMENTS, [], return_type="RegistryObject")
    with pytest.raises(GatewayError) as e:
        parse_adhoc_query_request(el)
    assert codes_of(e.value) == ["XDSRegistryError"]


def test_object_ref_and_home_are_read():
    el = request(QueryName.GET_DOCUMENTS, [("$XDSDocumentEntryUniqueId", ["('1.2.3')"])],
                 return_type="ObjectRef", home="urn:oid:1.2.3")
    q = parse_adhoc_query_request(el)
    assert q.return_type is ReturnType.OBJECT_REF and q.home == "urn:oid:1.2.3"
    assert q.id == "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"


def test_build_round_trips_python_values():
    q = build(QueryName.FIND_FOLDERS, {
        "$XDSFolderPatientId": PID, "$XDSFolderStatus": [APPROVED],
        "$XDSFolderCodeList": [("Referrals", "1.3.6")],
    })
    assert q.groups("$XDSFolderCodeList") == ((("Referrals", "1.3.6"),),)


def test_nist_samples():
    ok = load_element(NIST + "xds-iti18-FindDocuments-request_soap12.xml", c.QUERY,
                      "AdhocQueryRequest")
    q = parse_adhoc_query_request(ok)
    assert q.values("$XDSDocumentEntryClassCode") == (("value", "scheme"),)
    expected = {
        "xds-iti18-FindDocuments-request_bad-code-format_invalid.xml": "XDSRegistryError",
        "xds-iti18-FindDocuments-request_bad-patientid-format_invalid.xml": "XDSRegistryError",
        "xds-iti18-FindDocuments-request_missing-status_invalid.xml": "XDSStoredQueryMissingParam",
    }
    for name, code in expected.items():
        with pytest.raises(GatewayError) as e:
            parse_adhoc_query_request(load_element(NIST + name, c.QUERY, "AdhocQueryRequest"))
        assert code in codes_of(e.value), name
