"""PIXv3: ITI-44 feeds with their MCCI acknowledgements, ITI-45 queries and their answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from profiles.hl7v3.ack import mcci_acknowledgement_to_xml, parse_mcci_acknowledgement
from profiles.hl7v3.control import QueryResponseCode
from profiles.hl7v3.datatypes import II, PN, TS
from profiles.hl7v3.errors import HL7_TABLE_0357, Hl7v3Error, UnknownKeyIdentifier
from profiles.hl7v3.wrapper import AckType, Device
from profiles.hl7v3.xmlutil import HL7
from profiles.pix.hl7v3 import (
    PATIENT_IDENTIFIER_LOCATION,
    FeedKind,
    PixQueryResponse,
    feed_acknowledgement,
    feed_error_acknowledgement,
    parse_patient_identity_feed,
    parse_pix_query,
    parse_pix_query_response,
    pix_query_response_to_xml,
    query_error_acknowledgement,
)

IPF = "messages/ipf/"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
US = Device(II("1.2.840.114350.1.13.99999.4567"), "1.2.840.114350.1.13.99999.1234")
HIMSS = "1.3.6.1.4.1.21367.2005.1.1"
KNOWN = {HIMSS, "1.3.6.1.4.1.21367.2005.1.2", "1.2.3.4.5.1000"}

# sample -> (kind, first patient id, replaced ids)
FEEDS = {
    "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml":
        (FeedKind.ADD, II(HIMSS, "PIX10515W3", "HIMSS2005"), ()),
    "pixv3-iti44-PRPA_IN201301UV02-add_translated-from-ADT_A01.xml":
        (FeedKind.ADD, II("2.16.840.1.113883.3.37.4.1.1.2.1.1", "306563", "MPI"), ()),
    "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml":
        (FeedKind.REVISE, II(HIMSS, "PIX10515W3", "HIMSS2005"), ()),
    "pixv3-iti44-PRPA_IN201302UV02-revise_translated-from-ADT_A08.xml":
        (FeedKind.REVISE, II("2.16.840.1.113883.3.37.4.1.1.2.1.1", "306567", "MPI"), ()),
    "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml":
        (FeedKind.MERGE, II("1.2.3.4.5.1000", "120-01"),
         (II("1.2.3.4.666", "120-02", "domain1"),)),
    "pixv3-iti44-PRPA_IN201304UV02-merge_translated-from-ADT_A40.xml":
        (FeedKind.MERGE, II("2.16.840.1.113883.3.37.4.1.1.2.1.1", "142025", "130"),
         (II("2.16.840.1.113883.3.37.4.1.1.2.1.1", "704686", "130"),)),
}


def test_every_pixv3_sample_is_covered(samples_carrying):
    covered = {*FEEDS, "pixv3-iti44-PRPA_IN201301UV02-add_two-subjects_invalid.xml",
               "pixv3-iti44-MCCI_IN000002UV01-ack.xml", "pixv3-iti45-PRPA_IN201309UV02-query.xml",
               "pixv3-iti45-PRPA_IN201309UV02-query_unknown-assigning-authority.xml",
               "pixv3-iti45-PRPA_IN201309UV02-query_unknown-patient-id.xml",
               "pixv3-iti45-PRPA_IN201310UV02-response.xml"}
    found = set()
    for name in ("PRPA_IN201301UV02", "PRPA_IN201302UV02", "PRPA_IN201304UV02",
                 "PRPA_IN201309UV02", "PRPA_IN201310UV02", "MCCI_IN000002UV01"):
        found |= {p.removeprefix(IPF) for p in samples_carrying(name) if p.startswith(IPF)}
    assert found == covered


CONNECT_ADD = "messages/connect/pixv3-correlation-add-PRPA_IN201301UV02-request.xml"
CONNECT_RETRIEVE = "messages/connect/pixv3-correlation-retrieve-PRPA_IN201309UV02-request.xml"


def test_connect_correlation_payloads(hl7_message):
    """CONNECT's internal PatientCorrelation service borrows PIXv3 shapes (not ITI-44/45)."""
    query = parse_pix_query(hl7_message(CONNECT_RETRIEVE, "PRPA_IN201309UV02"))
    assert query.patient_id.root and query.patient_id.extension
    # its "add" has neither trigger event code nor patientPerson: not an ITI-44 feed
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_identity_feed(hl7_message(CONNECT_ADD, "PRPA_IN201301UV02"))
    assert (err.value.code, err.value.location) == (
        "SYN105", "/PRPA_IN201301UV02/controlActProcess/code")


def load(hl7_message, sample: str) -> etree._Element:
    return hl7_message(IPF + sample, sample.split("-")[2])


@pytest.mark.parametrize("sample", FEEDS)
def test_every_feed_sample_parses_and_is_acknowledged(sample, hl7_message, assert_valid):
    kind, first_id, replaced = FEEDS[sample]
    feed = parse_patient_identity_feed(load(hl7_message, sample))
    assert feed.kind is kind and feed.patient.id == first_id
    assert feed.replacement_of == replaced
    assert feed.patient.person.names and feed.custodian
    ack = feed_acknowledgement(feed, sender=US, now=NOW)
    el = mcci_acknowledgement_to_xml(ack)
    assert_valid(el)
    assert parse_mcci_acknowledgement(el) == ack
    assert ack.acknowledgement.type_code is AckType.AA
    assert ack.acknowledgement.target_message == feed.transmission.id


def test_maximal_add_in_detail(hl7_message):
    feed = parse_patient_identity_feed(
        load(hl7_message, "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml"))
    patient, person = feed.patient, feed.patient.person
    assert [i.extension for i in patient.ids] == ["PIX10515W3", "PIX10515W4", "PIX10515W5"]
    assert patient.ids[2].root is None  # a domain named only by assigningAuthorityName
    assert person.names[0].prefix == ("Dr.",) and person.names[0].given == ("MARY", "ROSE")
    assert person.names[1].parts[1].qualifier == "BR"
    assert person.gender.code == "F" and person.birth_time == TS("19771208")
    assert person.deceased is False and len(person.telecoms) == 5
    assert [a.postal_code for a in person.addresses] == ["60523", "60555"]
    assert person.mothers_maiden_name == PN.of((), "JOHN")
    assert person.birth_place_name == "Chicago" and person.marital_status.code == "M"
    assert [o.id.extension for o in person.other_ids] == ["100-09-1234", "100-09-123456"]
    assert patient.provider_organization == "1.2.840.114350.1.13.99998.8734"


def test_merge_with_an_unstructured_name(hl7_message):
    feed = parse_patient_identity_feed(
        load(hl7_message, "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml"))
    assert feed.patient.person.names[0].text == "Unknown"


def test_two_subjects_are_refused_with_a_located_ae(hl7_message, assert_valid):
    el = load(hl7_message, "pixv3-iti44-PRPA_IN201301UV02-add_two-subjects_invalid.xml")
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_identity_feed(el)
    assert (err.value.code, err.value.location) == (
        "SYN110", "/PRPA_IN201301UV02/controlActProcess/subject[2]")
    answer = feed_error_acknowledgement(None, err.value, sender=US, now=NOW)
    assert_valid(answer)
    ack = parse_mcci_acknowledgement(answer).acknowledgement
    assert ack.type_code is AckType.AE and ack.target_message == II("2.25.19")
    assert ack.details[0].location == "/PRPA_IN201301UV02/controlActProcess/subject[2]"


def _find(el, path):
    return el.find(path.replace("h:", f"{{{HL7}}}"))


EVENT = "h:controlActProcess/h:subject/h:registrationEvent"
FEED_RULES = [
    ("add with replacementOf", "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml",
     lambda e: _find(e, EVENT).append(etree.Element(f"{{{HL7}}}replacementOf")),
     "SYN113", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/replacementOf"),
    ("merge without replacementOf", "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml",
     lambda e: _find(e, EVENT).remove(_find(e, EVENT + "/h:replacementOf")),
     "SYN105", "/PRPA_IN201304UV02/controlActProcess/subject/registrationEvent/replacementOf"),
    ("prior registration still active", "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml",
     lambda e: _find(e, EVENT + "/h:replacementOf/h:priorRegistration/h:statusCode").set(
         "code", "active"),
     "SYN111", "/PRPA_IN201304UV02/controlActProcess/subject/registrationEvent/replacementOf/"
               "priorRegistration/statusCode"),
    ("registration not active", "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml",
     lambda e: _find(e, EVENT + "/h:statusCode").set("code", "nullified"),
     "SYN111", "/PRPA_IN201302UV02/controlActProcess/subject/registrationEvent/statusCode"),
    ("wrong trigger event", "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml",
     lambda e: _find(e, "h:controlActProcess/h:code").set("code", "PRPA_TE201301UV02"),
     "SYN111", "/PRPA_IN201302UV02/controlActProcess/code"),
    ("person without a name", "pixv3-iti44-PRPA_IN201301UV02-add_translated-from-ADT_A01.xml",
     lambda e: [n.getparent().remove(n) for n in e.iter(f"{{{HL7}}}name")
                if etree.QName(n.getparent()).localname == "patientPerson"],
     "SYN105", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/"
               "patient/patientPerson/name"),
    ("birth time that is no time", "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml",
     lambda e: next(e.iter(f"{{{HL7}}}birthTime")).set("value", "8 Dec 1977"),
     "SYN102", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/"
               "patient/patientPerson/birthTime/@value"),
]


@pytest.mark.parametrize(("why", "sample", "mutate", "code", "where"), FEED_RULES,
                         ids=[r[0] for r in FEED_RULES])
def test_rule_breaking_feeds_are_refused(why, sample, mutate, code, where, hl7_message):
    el = load(hl7_message, sample)
    mutate(el)
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_identity_feed(el)
    assert (err.value.code, err.value.location) == (code, where)
    assert err.value.transmission is not None  # so the AE can name the feed it refuses


def test_a_query_is_not_a_feed(hl7_message):
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_identity_feed(
            load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query.xml"))
    assert err.value.code == "SYN"


# -- ITI-45 ----------------------------------------------------------------------------------


def test_query_sample(hl7_message):
    query = parse_pix_query(load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query.xml"))
    assert query.patient_id == II(HIMSS, "PIX10501", "HIMSS2005")
    assert query.data_sources == ("1.3.6.1.4.1.21367.2005.1.2",)
    assert query.query_id == II("1.2.3.4.5")
    query.check_domains(KNOWN)  # every domain known: no error


def test_found_identifiers_answer_ok(hl7_message, assert_valid):
    query = parse_pix_query(load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query.xml"))
    ids = [II("1.3.6.1.4.1.21367.2005.1.2", "X1"), II("1.2.3.4.5.1000", "Y2")]
    response = PixQueryResponse.found(query, ids, sender=US, now=NOW)
    el = pix_query_response_to_xml(response)
    assert_valid(el)
    back = parse_pix_query_response(el)
    assert back == response
    assert (back.acknowledgement.type_code, back.query_response_code) == (AckType.AA, "OK")
    assert back.identifiers == tuple(ids) and back.patient_id == query.patient_id
    assert el.find(f"{{{HL7}}}acceptAckCode").get("code") == "NE"
    assert el.find(f"{{{HL7}}}controlActProcess").get("moodCode") == "EVN"
    assert el.find(".//{*}patient/{*}id").attrib == {"root": ids[0].root, "extension": "X1"}
    assert el.find(".//{*}providerOrganization/{*}id").get("root") == ids[0].root


def test_unknown_patient_in_a_known_domain_answers_nf(hl7_message, assert_valid):
    query = parse_pix_query(
        load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query_unknown-patient-id.xml"))
    query.check_domains(KNOWN)  # the domain is known...
    response = PixQueryResponse.unknown_patient(query, now=NOW)  # ...the patient is not
    el = pix_query_response_to_xml(response)
    assert_valid(el)
    back = parse_pix_query_response(el)
    assert back == response
    assert (back.acknowledgement.type_code, back.query_response_code) == (
        AckType.AA, QueryResponseCode.NF)
    assert back.identifiers == () and el.find(".//{*}registrationEvent") is None


def test_unknown_assigning_authority_answers_ae_204(hl7_message, assert_valid):
    query = parse_pix_query(load(
        hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query_unknown-assigning-authority.xml"))
    with pytest.raises(UnknownKeyIdentifier) as err:
        query.check_domains(KNOWN)
    el = query_error_acknowledgement(query, err.value, sender=US, now=NOW)
    assert_valid(el)
    back = parse_pix_query_response(el)
    assert (back.acknowledgement.type_code, back.query_response_code) == (AckType.AE, "AE")
    (detail,) = back.acknowledgement.details
    assert (detail.code.code, detail.code.code_system) == ("204", HL7_TABLE_0357)
    assert detail.location == PATIENT_IDENTIFIER_LOCATION == (
        "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/"
        "patientIdentifier/value")
    assert back.identifiers == () and back.query_id == query.query_id


def test_unknown_data_sources_are_each_located(hl7_message):
    el = load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query.xml")
    plist = el.find(".//{*}parameterList")
    extra = etree.fromstring(etree.tostring(plist[0]))
    extra[0].set("root", "2.999.7")
    plist.insert(1, extra)
    query = parse_pix_query(el)
    assert query.data_sources == ("1.3.6.1.4.1.21367.2005.1.2", "2.999.7")
    with pytest.raises(UnknownKeyIdentifier) as err:
        query.check_domains(KNOWN)
    assert [d.location for d in err.value.details] == [
        "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/dataSource[2]/value"]
    back = parse_pix_query_response(query_error_acknowledgement(query, err.value))
    assert back.acknowledgement.details[0].location == err.value.details[0].location


PL = ".//{*}parameterList"
QUERY_RULES = [
    ("two patient identifiers",
     lambda e: e.find(PL).append(
         etree.fromstring(etree.tostring(e.find(PL + "/{*}patientIdentifier")))),
     "SYN108", "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/"
               "patientIdentifier[2]"),
    ("no patient identifier",
     lambda e: e.find(PL).remove(e.find(PL + "/{*}patientIdentifier")),
     "SYN105", "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/"
               "patientIdentifier"),
    ("data source with an extension",
     lambda e: e.find(PL + "/{*}dataSource/{*}value").set("extension", "x"),
     "SYN113", "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/"
               "dataSource/value"),
    ("deferred priority",
     lambda e: e.find(".//{*}responsePriorityCode").set("code", "D"),
     "SYN111", "/PRPA_IN201309UV02/controlActProcess/queryByParameter/responsePriorityCode"),
    ("patient id without extension",
     lambda e: e.find(PL + "/{*}patientIdentifier/{*}value").attrib.pop("extension"),
     "SYN101", "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/"
               "patientIdentifier/value/@extension"),
]


@pytest.mark.parametrize(("why", "mutate", "code", "where"), QUERY_RULES,
                         ids=[r[0] for r in QUERY_RULES])
def test_rule_breaking_queries_get_a_located_ae(why, mutate, code, where, hl7_message,
                                                assert_valid):
    el = load(hl7_message, "pixv3-iti45-PRPA_IN201309UV02-query.xml")
    mutate(el)
    with pytest.raises(Hl7v3Error) as err:
        parse_pix_query(el)
    assert (err.value.code, err.value.location) == (code, where)
    answer = query_error_acknowledgement(None, err.value, now=NOW)
    assert_valid(answer)
    back = parse_pix_query_response(answer)
    assert back.acknowledgement.target_message == II("4a8aa794-b703-401c-8677-cca493c22d14")
    assert back.query_id == II("1.2.3.4.5")


def test_response_sample_is_read(hl7_message, assert_valid):
    response = parse_pix_query_response(
        load(hl7_message, "pixv3-iti45-PRPA_IN201310UV02-response.xml"))
    assert response.query_response_code is QueryResponseCode.OK
    assert [i.extension for i in response.identifiers] == ["34827G409", "38273N237",
                                                           "999-99-4452"]
    assert response.patient_id == II("1.2.840.114350.1.13.99997.2.3412", "38273N237")
    el = pix_query_response_to_xml(response)
    assert_valid(el)
    assert parse_pix_query_response(el) == response
