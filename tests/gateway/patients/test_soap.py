"""The IPF, CONNECT, Metriport and NIST ITI-44/45/55 samples as real SOAP requests through the
in-process app (/pix and /xcpd), answered from the SQL index; every answer is schema-valid."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree

import wsdl
from gateway.app import create_app
from gateway.config import config_from_dict
from gateway.patients.models import PatientCorrelation
from profiles.errors import WSA_NS
from profiles.hl7v3.ack import parse_mcci_acknowledgement
from profiles.hl7v3.control import IssueError, QueryResponseCode
from profiles.hl7v3.datatypes import II, PN, TS, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.hl7v3.wrapper import AckType
from profiles.pix.hl7v3 import parse_pix_query_response
from profiles.pix.ports import IndexBusy, PatientRecord, key_of
from profiles.xcpd.response import parse_patient_discovery_response
from tests.conftest import make_config_dict
from tests.gateway.patients.conftest import sample_body

S12 = "http://www.w3.org/2003/05/soap-envelope"
IPF = "messages/ipf/"
HCID = "1.3.6.1.4.1.21367.2011.2.1"  # make_config_dict's community
ADD = "urn:hl7-org:v3:PRPA_IN201301UV02"
XCPD = "urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery"
FEEDS = {
    "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201301UV02-add_translated-from-ADT_A01.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201302UV02-revise_translated-from-ADT_A08.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201304UV02-merge_translated-from-ADT_A40.xml": AckType.AA,
    "pixv3-iti44-PRPA_IN201301UV02-add_two-subjects_invalid.xml": AckType.AE,
}


@pytest.fixture
def app(tmp_path: Path, database_url: str):
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url), base=tmp_path,
                           environ={})
    application = create_app(cfg)
    # XUA (signed SAML on /xcpd) has its own tests; these are about what the index answers.
    application.extensions["gateway"].security = None
    yield application
    application.extensions["gateway"].database.dispose()


@pytest.fixture
def index(app):
    return app.extensions["gateway"].ports.patients


def post(app, path: str, action: str, body: etree._Element) -> tuple[etree._Element, dict]:
    """POST ``body`` in a SOAP 1.2 envelope; return the answer's body element and headers."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    env = etree.Element(f"{{{S12}}}Envelope", nsmap={"s": S12, "wsa": WSA_NS})
    header = etree.SubElement(env, f"{{{S12}}}Header")
    for name, value in (("Action", action), ("MessageID", message_id),
                        ("To", f"https://gateway.test{path}")):
        etree.SubElement(header, f"{{{WSA_NS}}}{name}").text = value
    etree.SubElement(env, f"{{{S12}}}Body").append(body)
    resp = app.test_client().post(path, data=etree.tostring(env),
                                  content_type="application/soap+xml; charset=UTF-8")
    assert resp.status_code == 200, resp.data[:500]
    answer = etree.fromstring(resp.data)
    headers = {etree.QName(h).localname: h.text for h in answer.find(f"{{{S12}}}Header")}
    assert headers["RelatesTo"] == message_id
    (reply,) = answer.find(f"{{{S12}}}Body")
    wsdl.schema("hl7v3").assertValid(etree.ElementTree(etree.fromstring(etree.tostring(reply))))
    return reply, headers


def feed(app, sample: str) -> etree._Element:
    kind = sample.split("-")[2]
    reply, headers = post(app, "/pix", f"urn:hl7-org:v3:{kind}", sample_body(IPF + sample, kind))
    assert headers["Action"] == "urn:hl7-org:v3:MCCI_IN000002UV01"
    return reply


@pytest.mark.parametrize("sample", FEEDS)
def test_every_ipf_feed_is_acknowledged(app, index, sample):
    ack = parse_mcci_acknowledgement(feed(app, sample)).acknowledgement
    assert ack.type_code is FEEDS[sample]
    if ack.type_code is AckType.AE:
        assert ack.details[0].location == "/PRPA_IN201301UV02/controlActProcess/subject[2]"
        assert not index.domains()


def pix_query(app, sample: str, mutate=None):
    body = sample_body(IPF + sample, "PRPA_IN201309UV02")
    if mutate:
        mutate(body)
    reply, headers = post(app, "/pix", "urn:hl7-org:v3:PRPA_IN201309UV02", body)
    assert headers["Action"] == "urn:hl7-org:v3:PRPA_IN201310UV02"
    return parse_pix_query_response(reply)


def test_feed_then_query_then_merge(app, index):
    """The add sample's ids cross-reference; after the merge sample the obsolete id is gone."""
    feed(app, "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml")

    def ask_for_w3(el):
        value = el.find(".//{*}patientIdentifier/{*}value")
        value.set("extension", "PIX10515W3")
        el.find(".//{*}dataSource/{*}value").set("root", "1.2.3.4.5.1000")

    r = pix_query(app, "pixv3-iti45-PRPA_IN201309UV02-query.xml", ask_for_w3)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA, "OK")
    assert [key_of(i) for i in r.identifiers] == [("1.2.3.4.5.1000", "PIX10515W4")]

    index.add(PatientRecord(II("1.2.3.4.666", "120-02"), Person(names=(PN.of("X", "Y"),))))
    index.record_correlation(II("1.2.3.4.666", "120-02"), II("5.5.5", "P"), "6.6.6")
    feed(app, "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml")
    assert not index.known(II("1.2.3.4.666", "120-02"))
    assert [c.theirs for c in index.correlations(II("1.2.3.4.5.1000", "120-01"))] == [
        II("5.5.5", "P")]


def test_ipf_queries_ok_nf_and_ae(app, index):
    himss, other = "1.3.6.1.4.1.21367.2005.1.1", "1.3.6.1.4.1.21367.2005.1.2"
    index.add(PatientRecord(II(himss, "PIX10501"), Person(
        names=(PN.of("Ann", "Lee"),), other_ids=(OtherId(II(other, "O-9")),))))
    ok = pix_query(app, "pixv3-iti45-PRPA_IN201309UV02-query.xml")
    assert (ok.query_response_code, ok.identifiers) == (QueryResponseCode.OK, (II(other, "O-9"),))
    nf = pix_query(app, "pixv3-iti45-PRPA_IN201309UV02-query_unknown-patient-id.xml")
    assert (nf.acknowledgement.type_code, nf.query_response_code) == (AckType.AA, "NF")
    ae = pix_query(app, "pixv3-iti45-PRPA_IN201309UV02-query_unknown-assigning-authority.xml")
    assert (ae.acknowledgement.type_code, ae.query_response_code) == (AckType.AE, "AE")
    assert ae.acknowledgement.details[0].code.code == "204"


def test_a_body_that_is_not_the_announced_feed_gets_an_ae(app):
    reply, _ = post(app, "/pix", ADD, sample_body(
        IPF + "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml", "PRPA_IN201302UV02"))
    assert parse_mcci_acknowledgement(reply).acknowledgement.details[0].code.code == "NS200"
    reply, _ = post(app, "/pix", ADD, etree.fromstring(b"<x:Other xmlns:x='urn:x'/>"))
    ack = parse_mcci_acknowledgement(reply).acknowledgement
    assert (ack.type_code, ack.details[0].code.code) == (AckType.AE, "SYN")


# -- ITI-55 ----------------------------------------------------------------------------------

JIMMY = PatientRecord(II("1.3.6.1.4.1.21367.2011.2.1.1", "J-1"), Person(
    names=(PN.of("Jimmy", "Jones"),), gender=gender("M"), birth_time=TS("19630805")))
CHIP = PatientRecord(II("1.2.3.4.5.1000", "100", "domain1"), Person(
    names=(PN.of("Chip", "Moore"),), gender=gender("M"), birth_time=TS("19849711")))
NWHIN = PatientRecord(II("1.3.6.1.4.1.21367.2011.2.1.1", "N-1"), Person(
    names=(PN.of("NWHINONE", "NWHINZZZTESTPATIENT"),), gender=gender("M"),
    birth_time=TS("19810101"), other_ids=(OtherId(II("2.16.840.1.113883.4.1", "666-10-0001")),)))

DISCOVERY = [
    (IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml", "OK", JIMMY.id),
    (IPF + "xcpd-iti55-PRPA_IN201305UV02-request_deferred.xml", "AE", None),
    ("messages/connect/iti55-entity-patientDiscovery-request.xml", "NF", None),
    ("messages/connect/iti55-deferred-entity-request.xml", "NF", None),
    ("messages/metriport/xcpd-iti55-req-signed-saml-rsasha1-mixed-prefixes.xml", "OK", NWHIN.id),
    ("nist-testkit/xcpd/FindPatient/XCA/findpatient.xml", "NF", None),
    ("nist-testkit/tests/15500/test1_findpatient_dob_gender_name.xml", "OK", CHIP.id),
    ("nist-testkit/tests/15500/test2_findpatient_gender_name_failure.xml", "AE", None),
    ("nist-testkit/tests/15500/test3_findpatient_dob_gender_name_failure.xml", "NF", None),
]


@pytest.mark.parametrize(("sample", "code", "patient"), DISCOVERY,
                         ids=[s.rsplit("/", 1)[1] for s, _, _ in DISCOVERY])
def test_every_discovery_sample_is_answered(app, index, sample, code, patient):
    for record in (JIMMY, CHIP, NWHIN):
        index.add(record)
    reply, headers = post(app, "/xcpd", XCPD, sample_body(sample, "PRPA_IN201305UV02"))
    assert headers["Action"] == "urn:hl7-org:v3:PRPA_IN201306UV02:CrossGatewayPatientDiscovery"
    r = parse_patient_discovery_response(reply)
    assert r.query_response_code == code
    assert [key_of(m.patient.id) for m in r.matches] == ([key_of(patient)] if patient else [])
    assert all(m.home_community_id == HCID for m in r.matches)
    assert r.acknowledgement.type_code is (AckType.AE if code == "AE" else AckType.AA)


def test_a_match_records_the_initiators_id(app, index):
    index.add(JIMMY)
    post(app, "/xcpd", XCPD, sample_body(IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml",
                                         "PRPA_IN201305UV02"))
    with app.extensions["gateway"].database.session() as s:
        rows = s.execute(sa.select(PatientCorrelation.home_community_id, PatientCorrelation.root,
                                   PatientCorrelation.extension)).all()
    assert [tuple(r) for r in rows] == [
        ("urn:oid:1.2.3.928.955", "1.2.840.114350.1.13.99997.2.3412", "1234")]


def test_an_unreachable_index_answers_responder_busy(app, index, monkeypatch):
    def busy(*args, **kwargs):
        raise IndexBusy("busy")

    monkeypatch.setattr(index, "candidates", busy)
    reply, _ = post(app, "/xcpd", XCPD, sample_body(
        IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml", "PRPA_IN201305UV02"))
    r = parse_patient_discovery_response(reply)
    assert r.query_response_code is QueryResponseCode.AE
    assert [i.code for i in r.detected_issues] == [IssueError.RESPONDER_BUSY]
