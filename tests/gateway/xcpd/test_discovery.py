"""/ig/xcpd against in-process responding gateways (MockTransport) and the SQL patient index:
matches verified and stored, every failure mode reported per community, the merged answer
and every outbound request valid against the HL7 v3 schemas."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from gateway.client import OutboundClient
from gateway.partners.directory import PartnerDirectory
from gateway.patients.index import SqlPatientIndex
from gateway.store import migrate
from gateway.store.db import Database
from gateway.transport import PartnerTimeout
from gateway.xca.initiating import FanOut
from gateway.xcpd.fanout import DiscoveryFanOut
from profiles.atna.facts import AuditFacts
from profiles.hl7v3.control import QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TS, gender
from profiles.hl7v3.patient import Person
from profiles.hl7v3.wrapper import AckType, DetailType, Device
from profiles.pix.ports import PatientRecord
from profiles.transaction import Context
from profiles.xcpd.ig_iti55 import IG_ITI_55
from profiles.xcpd.models import PatientDiscoveryQuery, QueryParameters
from profiles.xcpd.query import parse_patient_discovery_query, patient_discovery_query_to_xml
from profiles.xcpd.response import parse_patient_discovery_response
from tests.gateway.xca.peers import partner
from tests.gateway.xcpd.peers import XcpdPeers

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
DS = "http://www.w3.org/2000/09/xmldsig#"
HOME = "2.999.2"
DOMAIN = "2.999.2.1"
DOD, PARTNER, DOWN, SLOW, FAULTY, GARBAGE, BUSY, MUTE, ODD = (
    f"2.999.{i}" for i in (1, 3, 4, 5, 6, 7, 8, 9, 10))
ALEX = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("M"), birth_time=TS("19700412"),
              addresses=(AD.of("1 Main St", "Springfield", "IL", "62701"),))
OURS = PatientRecord(II(DOMAIN, "V-500"), ALEX)


class Sink:
    """An audit sink like the pipeline's: the facts noted for the request."""

    def __init__(self) -> None:
        self.facts = AuditFacts()

    def note(self, **facts) -> None:
        self.facts.add(**facts)


@pytest.fixture
def index(database_url: str) -> Iterator[SqlPatientIndex]:
    migrate.upgrade(database_url)
    database = Database(database_url)
    index = SqlPatientIndex(database)
    index.add(OURS)
    yield index
    database.dispose()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def discovery(peers: XcpdPeers, oids: list[str], pool, *, deadline: float = 2.0,
              **partner_kw) -> DiscoveryFanOut:
    directory = PartnerDirectory([partner(o, **partner_kw.get(o, {})) for o in oids])
    xca = FanOut(OutboundClient(peers.transport()), directory, deadline_seconds=60, pool=pool)
    return DiscoveryFanOut.beside(xca, deadline_seconds=deadline)


def local_request(*, ids=(OURS.id,), person: Person = ALEX, to: str | None = None
                  ) -> etree._Element:
    params = QueryParameters(names=person.names, gender=person.gender,
                             birth_time=person.birth_time, ids=ids)
    query = PatientDiscoveryQuery.new(
        params, sender=Device(II("2.999.2.77")), receiver=Device(II(to or HOME), to or HOME),
        assigning_authority=DOMAIN if ids else None)
    return patient_discovery_query_to_xml(query)


def ask(body: etree._Element, xcpd: DiscoveryFanOut, index: SqlPatientIndex, assert_valid,
        sink: Sink | None = None, principal=None):
    assert_valid(body)
    ctx = Context("req-1", IG_ITI_55.action, None, None, f"urn:oid:{HOME}", datetime.now(UTC),
                  ports=SimpleNamespace(xcpd=xcpd, patients=index), audit=sink,
                  principal=principal)
    el = IG_ITI_55.serialize(IG_ITI_55.handle(IG_ITI_55.parse(body, ctx), ctx))
    assert_valid(el)
    return parse_patient_discovery_response(el)


def correlations(index: SqlPatientIndex) -> set[tuple[str, str, str]]:
    return {(c.home_community_id, c.theirs.root, c.theirs.extension)
            for c in index.correlations(OURS.id)}


def test_a_person_known_in_two_communities_is_verified_stored_and_merged(
        index, pool, assert_valid):
    peers = XcpdPeers()
    peers.knows(DOD, ALEX, "D-1")
    peers.knows(PARTNER, replace(ALEX, addresses=()), "MRN-7")
    sink = Sink()
    answer = ask(local_request(), discovery(peers, [DOD, PARTNER], pool), index, assert_valid,
                 sink)
    assert (answer.acknowledgement.type_code, answer.query_response_code) == (
        AckType.AA, QueryResponseCode.OK)
    assert sorted((m.home_community_id, m.patient.id.extension) for m in answer.matches) == [
        (DOD, "D-1"), (PARTNER, "MRN-7")]
    assert correlations(index) == {(f"urn:oid:{DOD}", f"{DOD}.1", "D-1"),
                                   (f"urn:oid:{PARTNER}", f"{PARTNER}.1", "MRN-7")}
    # each partner got its own valid request: us as sender, it as receiver, our id
    assert len(peers.bodies) == 2
    for body in peers.bodies:
        assert_valid(body)
        sent = parse_patient_discovery_query(body)
        assert sent.sender_home_community_id == HOME and sent.assigning_authority == DOMAIN
        assert sent.parameters.ids == (OURS.id,)
    assert {parse_patient_discovery_query(b).transmission.receiver.home_community_id
            for b in peers.bodies} == {DOD, PARTNER}
    # audit facts: the /ig/xcpd request and one initiator-side ITI-55 per partner
    facts = sink.facts
    assert facts.query and facts.query_id
    assert str(OURS.id) in facts.patient_ids and f"D-1^^^&{DOD}.1&ISO" in facts.patient_ids
    assert sorted(c.endpoint for c in facts.outbound) == sorted(
        partner(o).endpoint("ITI-55") for o in (DOD, PARTNER))
    assert all(c.transaction == "ITI-55" and c.outcome == "success" for c in facts.outbound)
    assert all(c.home_community_id == HOME and c.query for c in facts.outbound)


def test_no_match_and_ambiguous_answers_store_nothing(index, pool, assert_valid):
    peers = XcpdPeers()
    peers.no_match(DOD)
    peers.ambiguous(PARTNER, RequestedAttribute.PATIENT_TELECOM)
    answer = ask(local_request(), discovery(peers, [DOD, PARTNER], pool), index, assert_valid)
    assert (answer.acknowledgement.type_code, answer.query_response_code) == (
        AckType.AA, QueryResponseCode.NF)
    assert answer.matches == () and answer.errors == ()
    assert answer.requested_attributes == ("PatientTelecomRequested",)
    assert correlations(index) == set()


def test_a_match_our_demographics_disagree_with_is_dropped_and_logged_without_phi(
        index, pool, assert_valid, caplog):
    peers = XcpdPeers()
    someone_else = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("F"),
                          birth_time=TS("19991231"))
    peers.knows(DOD, someone_else, "D-9", score=100)
    with caplog.at_level(logging.INFO, logger="profiles.xcpd.discovery"):
        answer = ask(local_request(), discovery(peers, [DOD], pool), index, assert_valid)
    assert answer.matches == () and answer.query_response_code is QueryResponseCode.NF
    assert correlations(index) == set()
    (record,) = [r for r in caplog.records if r.getMessage() == "discovered match not trusted"]
    assert record.home_community_id == f"urn:oid:{DOD}" and record.score < 50
    # What the line carries: its message, arguments and extra fields; not the
    # LogRecord's own bookkeeping (a timestamp may hold '1999' by chance).
    own = vars(logging.makeLogRecord({})).keys() - {"msg", "args"}
    logged = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in own)
    logged += " " + record.getMessage()
    for phi in ("Rivera", "Alex", "1999", "D-9", "V-500"):
        assert phi not in logged


def test_every_failure_is_reported_per_community_beside_a_match(index, pool, assert_valid):
    peers = XcpdPeers()
    peers.knows(DOD, ALEX, "D-1")
    peers.down(DOWN)
    peers.times_out(SLOW)
    peers.faults(FAULTY)
    peers.garbage(GARBAGE)
    peers.busy(BUSY)
    peers.wrong_message(ODD)
    oids = [DOD, DOWN, SLOW, FAULTY, GARBAGE, BUSY, ODD]
    sink = Sink()
    try:
        answer = ask(local_request(), discovery(peers, oids, pool, **{SLOW: {"timeout": 0.2}}),
                     index, assert_valid, sink)
    finally:
        peers.release.set()
    assert (answer.acknowledgement.type_code, answer.query_response_code) == (
        AckType.AA, QueryResponseCode.OK)
    assert [m.patient.id.extension for m in answer.matches] == ["D-1"]
    why = {d.location: d.text for d in answer.errors}
    assert set(why) == {DOWN, SLOW, FAULTY, GARBAGE, BUSY, ODD}
    assert all(d.type_code is DetailType.WARNING and d.code.code == "INTERR"
               for d in answer.errors)
    assert "refused" in why[DOWN] and "0.2 s" in why[SLOW]
    assert "Expected AdhocQueryRequest" in why[FAULTY] and "text/html" in why[GARBAGE]
    assert "AE/AE (ResponderBusy)" in why[BUSY] and "could not be read" in why[ODD]
    assert correlations(index) == {(f"urn:oid:{DOD}", f"{DOD}.1", "D-1")}
    assert len(sink.facts.outbound) == len(oids)
    outcome = {c.endpoint: (c.outcome, bool(c.reason)) for c in sink.facts.outbound}
    assert outcome == {partner(o).endpoint("ITI-55"): (
        "success" if o == DOD else "error" if o == BUSY else "fault", o != DOD) for o in oids}


def test_the_deadline_bounds_discovery_and_all_failed_is_ae(index, pool, assert_valid):
    peers = XcpdPeers()

    def hang(request):  # answers only once released, long after the 0.3 s deadline
        peers.release.wait(30)
        raise PartnerTimeout("released")

    peers.behaviours[SLOW] = hang
    peers.down(DOWN)
    try:
        answer = ask(local_request(), discovery(peers, [SLOW, DOWN], pool, deadline=0.3),
                     index, assert_valid)
    finally:
        peers.release.set()
    assert (answer.acknowledgement.type_code, answer.query_response_code) == (
        AckType.AE, QueryResponseCode.AE)
    assert [i.code for i in answer.detected_issues] == ["AnswerNotAvailable"]
    why = {d.location: d.text for d in answer.errors}
    assert "deadline" in why[SLOW] and "refused" in why[DOWN]


def test_only_the_named_community_is_asked(index, pool, assert_valid):
    peers = XcpdPeers()
    peers.knows(DOD, ALEX, "D-1")
    peers.knows(PARTNER, ALEX, "MRN-7")
    answer = ask(local_request(to=PARTNER), discovery(peers, [DOD, PARTNER], pool), index,
                 assert_valid)
    assert [m.home_community_id for m in answer.matches] == [PARTNER]
    assert [r.partner.bare_oid for r in peers.requests] == [PARTNER]


def test_an_unknown_named_community_is_reported(index, pool, assert_valid):
    answer = ask(local_request(to="2.999.77"), discovery(XcpdPeers(), [DOD], pool), index,
                 assert_valid)
    assert answer.acknowledgement.type_code is AckType.AE
    assert [(d.location, d.text) for d in answer.errors] == [
        ("2.999.77", "community 2.999.77 unavailable: not in the partner directory")]


def test_a_query_by_demographics_finds_our_patient_and_correlates_it(index, pool, assert_valid):
    peers = XcpdPeers()
    peers.knows(DOD, ALEX, "D-1")
    answer = ask(local_request(ids=()), discovery(peers, [DOD], pool), index, assert_valid)
    assert [m.patient.id.extension for m in answer.matches] == ["D-1"]
    assert correlations(index) == {(f"urn:oid:{DOD}", f"{DOD}.1", "D-1")}
    sent = parse_patient_discovery_query(peers.bodies[0])
    assert sent.parameters.ids == () and sent.assigning_authority == DOMAIN


def test_a_deferred_request_is_refused_like_the_responder_refuses_it(index, pool,
                                                                     assert_valid):
    body = local_request()
    body.find("{urn:hl7-org:v3}controlActProcess/{urn:hl7-org:v3}queryByParameter/"
              "{urn:hl7-org:v3}responsePriorityCode").set("code", "D")
    respond = etree.Element("{urn:hl7-org:v3}respondTo", typeCode="RSP")
    body.insert(list(body).index(body.find("{urn:hl7-org:v3}sender")), respond)
    telecom = etree.SubElement(respond, "{urn:hl7-org:v3}telecom", value="https://x.example/")
    entity = etree.SubElement(respond, "{urn:hl7-org:v3}entityRsp", classCode="ENT",
                              determinerCode="INSTANCE")
    entity.set("{http://www.w3.org/2001/XMLSchema-instance}nil", "true")
    assert telecom is not None
    peers = XcpdPeers()
    answer = ask(body, discovery(peers, [DOD], pool), index, assert_valid)
    assert answer.acknowledgement.type_code is AckType.AE
    assert [i.code for i in answer.detected_issues] == ["AnswerNotAvailable"]
    assert peers.requests == []


def test_each_request_carries_a_signed_assertion_for_its_partner_speaking_for_the_requester(
        index, pool, assert_valid):
    from certs.authority import create_authority, issue
    from gateway.xca.wiring import system_principal, xua_security
    from profiles.errors import WSSE_NS
    from profiles.xua import SigningCredentials
    from tests.gateway.xca.test_outbound_xua import PRINCIPAL, SAML

    leaf = issue(create_authority(), "our-gateway")
    credentials = SigningCredentials.from_pem(leaf.private_key_pem(), leaf.certificate_pem())
    ours = system_principal(SimpleNamespace(community=SimpleNamespace(
        home_community_id=f"urn:oid:{HOME}", name="VA")))
    clock = SimpleNamespace(now=lambda: datetime.now(UTC))
    peers = XcpdPeers()
    peers.knows(DOD, ALEX, "D-1")
    peers.no_match(PARTNER)
    xca = FanOut(OutboundClient(peers.transport(),
                                security=xua_security(credentials, ours, clock)),
                 PartnerDirectory([partner(DOD), partner(PARTNER, signature_hash="sha1")]),
                 pool=pool)
    answer = ask(local_request(), DiscoveryFanOut.beside(xca), index, assert_valid,
                 principal=PRINCIPAL)
    assert [m.home_community_id for m in answer.matches] == [DOD]
    assert len(peers.requests) == 2
    for request in peers.requests:
        env = etree.fromstring(request.body)
        wsdl.schema("all").assertValid(env)
        security = env.find(f"{{{SOAP12}}}Header/{{{WSSE_NS}}}Security")
        assert security.findtext(f".//{{{SAML}}}Audience") == request.url
        assert request.url == partner(request.partner.bare_oid).endpoint("ITI-55")
        subject = [v.text for a in security.iter(f"{{{SAML}}}Attribute")
                   if a.get("Name").endswith("subject-id")
                   for v in a.iter(f"{{{SAML}}}AttributeValue")]
        assert subject == ["Dr. Jane Smith"]
        methods = {m.get("Algorithm") for m in security.iter(f"{{{DS}}}SignatureMethod")}
        sha = "rsa-sha1" if request.partner.bare_oid == PARTNER else "rsa-sha256"
        assert {m.rsplit("#", 1)[-1] for m in methods} == {sha}
