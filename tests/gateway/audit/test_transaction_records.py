"""Every transaction in the dispatch table leaves the audit record ITI TF-2 prescribes for
it (ihe-facts §10): sent as a valid request through the in-process app, each answer
leaves exactly its record(s), with the right EventID, EventActionCode, EventTypeCode,
Source/Destination roles and participant objects, valid against the DICOM audit
schema; the initiating gateway adds one initiator-side record per partner called. The
MLLP PIX Manager (ITI-8/9) is audited the same way. Failures: an error answer is
outcome 4, a fault 8, and a refused feed is still a Patient Record event."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree

from gateway.app import create_app
from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.client import OutboundClient
from gateway.config import config_from_dict
from gateway.dispatch import ROUTES, Route
from gateway.mllp import MllpServer, frame, pix_manager, read_frame
from gateway.partners.directory import PartnerDirectory
from gateway.xca.initiating import FanOut
from profiles.atna.codec import parse_audit_message
from profiles.atna.codes import TRANSACTIONS, ObjectIdType, Role, Side, feed_actions
from profiles.atna.message import AuditMessage, ParticipantObjectRole
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord
from profiles.transaction import Transaction
from profiles.xca.query import stored_query_to_xml
from profiles.xds.ebrim import provide_and_register_to_xml, submit_objects_request_to_xml
from profiles.xds.storedquery import QueryName, build
from tests.conftest import CONFORMANCE, make_config_dict
from tests.gateway.patients.conftest import sample_body
from tests.gateway.repository.conftest import Gateway
from tests.gateway.xca.peers import Peers, partner
from tests.gateway.xca.test_fanout import FakeCorrelations
from tests.gateway.xca.test_retrieve import mtom_partner
from tests.profiles.xds.builders import PATIENT, document_entry, member, submission

HOME = "1.3.6.1.4.1.21367.2011.2.1"  # make_config_dict's community
HCID = f"urn:oid:{HOME}"
REPOSITORY_ID = HOME + ".1"
GOOD = "1.2.3.301"  # a partner community (tests.gateway.xca.peers)
IPF = "messages/ipf/"
HL7V3 = "urn:hl7-org:v3:"
X = "{urn:ihe:iti:xds-b:2007}"
UNKNOWN_PATIENT = "NOBODY-1^^^&1.2.3.4.5&ISO"
# Routes whose handlers are being written elsewhere and do not note their facts yet:
# the line each needs is in the audit report. Remove an entry once its line is in.
AWAITING_NOTES: set[str] = set()


# -- the gateway in process ------------------------------------------------------------------


class Audited(Gateway):
    """The in-process gateway, plus its audit trail and partner communities."""

    peers: Peers
    pool: ThreadPoolExecutor

    def records(self) -> dict[str, AuditEntry]:
        AuditQueue(self.runtime.database).index_all()  # what the sender would do
        with self.runtime.database.session() as s:
            return {e.record_id: e for e in s.scalars(sa.select(AuditEntry))}

    def new_records(self, before: dict[str, AuditEntry]) -> list[tuple[AuditEntry, AuditMessage]]:
        return [
            (e, parse_audit_message(etree.fromstring(e.xml)))
            for rid, e in self.records().items()
            if rid not in before
        ]

    def store_document(self, unique_id: str = "1.2.3.4.5.100.11") -> None:
        answer = self.post("/xds/repository", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
                           pnr(unique_id))
        assert answer.body.get("status", "").endswith(":Success"), etree.tostring(answer.body)


@pytest.fixture
def gw(tmp_path: Path, database_url: str):
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url), base=tmp_path,
                           environ={})
    app = create_app(cfg)
    rt = app.extensions["gateway"]
    rt.security = None  # XUA has its own tests; here the records are the subject
    gateway = Audited(app.test_client(), rt, tmp_path / "data" / "spool")
    gateway.know(PATIENT)
    gateway.peers = Peers()
    with ThreadPoolExecutor(4) as pool:
        rt.ports.xca = FanOut(OutboundClient(gateway.peers.transport()),
                              PartnerDirectory([partner(GOOD)]), deadline_seconds=5, pool=pool,
                              correlations=FakeCorrelations([GOOD]))
        yield gateway
    rt.database.dispose()


# -- requests ----------------------------------------------------------------------------------


def pnr(unique_id: str = "1.2.3.4.5.100.11", patient: str = PATIENT) -> etree._Element:
    sub = submission(document_entries=(document_entry(
        "Document01", unique_id=unique_id, hash=None, size=None, repository_unique_id=None,
        patient_id=patient),), associations=(member("as01", "Document01"),))
    return provide_and_register_to_xml(sub, {"Document01": b"<ClinicalDocument/>"})


def register(patient: str = PATIENT) -> etree._Element:
    sub = submission()
    sub = submission(submission_set=_with_patient(sub.submission_set, patient),
                     document_entries=tuple(_with_patient(d, patient)
                                            for d in sub.document_entries))
    return submit_objects_request_to_xml(sub)


def _with_patient(obj, patient: str):
    from dataclasses import replace

    return replace(obj, patient_id=patient)


def find_documents(patient: str = PATIENT) -> etree._Element:
    return stored_query_to_xml(build(QueryName.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": f"'{patient}'",
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"],
    }))


def retrieve(unique_id: str, *, repository: str = REPOSITORY_ID,
             home: str | None = None) -> etree._Element:
    root = etree.Element(X + "RetrieveDocumentSetRequest",
                         nsmap={"xds": "urn:ihe:iti:xds-b:2007"})
    el = etree.SubElement(root, X + "DocumentRequest")
    if home:
        etree.SubElement(el, X + "HomeCommunityId").text = home
    etree.SubElement(el, X + "RepositoryUniqueId").text = repository
    etree.SubElement(el, X + "DocumentUniqueId").text = unique_id
    return root


def cx(el: etree._Element | None) -> str:
    assert el is not None
    return f"{el.get('extension')}^^^&{el.get('root')}&ISO"


SUBMISSION_SET_ID = submission().submission_set.unique_id


# -- what a record must say ------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    transaction: str
    side: Side = Side.RESPONDER
    action: str | None = None  # EventActionCode; the table's for the side when None
    patients: tuple[str, ...] | None = None  # patient object ids (None: not checked)
    query: etree._Element | bytes | None = None  # the query payload
    query_id: str | None = None
    submission_set: str | None = None
    documents: tuple[str, ...] | None = None
    partner: str | None = None  # initiator side: the partner's URL, the other participant


@dataclass
class Case:
    body: etree._Element
    expected: list[Expected]
    parts: dict[str, bytes] | None = None
    outbound: list[Expected] = field(default_factory=list)


def _query_id(body: etree._Element) -> str:
    return body.find(".//{*}AdhocQuery").get("id")


def case_iti18(gw: Audited) -> Case:
    body = find_documents()
    return Case(body, [Expected("ITI-18", patients=(PATIENT,), query=body,
                                query_id=_query_id(body))])


def case_iti38(gw: Audited) -> Case:
    body = find_documents()
    return Case(body, [Expected("ITI-38", patients=(PATIENT,), query=body,
                                query_id=_query_id(body))])


def case_ig_query(gw: Audited) -> Case:
    gw.peers.answers(GOOD, 2)
    body = find_documents()
    theirs = f"THEIRS-{GOOD}^^^&{GOOD}.9&ISO"  # FakeCorrelations' id for the patient there
    return Case(body, [Expected("ITI-18", patients=(PATIENT,), query=body,
                                query_id=_query_id(body))],
                outbound=[Expected("ITI-38", Side.INITIATOR, patients=(theirs,),
                                   query_id=_query_id(body),
                                   partner=partner(GOOD).endpoint("ITI-38"))])


def case_iti42(gw: Audited) -> Case:
    return Case(register(), [Expected("ITI-42", patients=(PATIENT,),
                                      submission_set=SUBMISSION_SET_ID)])


def case_iti41(gw: Audited) -> Case:
    return Case(pnr(), [Expected("ITI-41", patients=(PATIENT,),
                                 submission_set=SUBMISSION_SET_ID)])


def case_iti43(gw: Audited) -> Case:
    gw.store_document("1.2.3.4.5.100.11")
    return Case(retrieve("1.2.3.4.5.100.11"),
                [Expected("ITI-43", documents=("1.2.3.4.5.100.11",))])


def case_iti39(gw: Audited) -> Case:
    gw.store_document("1.2.3.4.5.100.11")
    return Case(retrieve("1.2.3.4.5.100.11", home=HCID),
                [Expected("ITI-39", documents=("1.2.3.4.5.100.11",))])


def case_ig_retrieve(gw: Audited) -> Case:
    gw.peers.behaviours[GOOD] = mtom_partner(GOOD)
    return Case(retrieve("1.2.3", repository="1.2", home=f"urn:oid:{GOOD}"),
                [Expected("ITI-43", documents=("1.2.3",))],
                outbound=[Expected("ITI-39", Side.INITIATOR, documents=("1.2.3",),
                                   partner=partner(GOOD).endpoint("ITI-39"))])


def _feed_case(sample: str) -> Callable[[Audited], Case]:
    kind = sample.split("-")[2]

    def make(gw: Audited) -> Case:
        body = sample_body(IPF + sample, kind)
        survivor = cx(body.find(".//{*}subject1/{*}patient/{*}id"))
        priors = tuple(cx(i) for i in body.iterfind(".//{*}replacementOf//{*}id"))
        expected = [Expected("ITI-44", action=a.value,
                             patients=priors if a.value == "D" else (survivor,))
                    for a in feed_actions(kind)]
        return Case(body, expected)

    return make


def case_iti45(gw: Audited) -> Case:
    body = sample_body(IPF + "pixv3-iti45-PRPA_IN201309UV02-query.xml", "PRPA_IN201309UV02")
    value = body.find(".//{*}patientIdentifier/{*}value")
    asked, other = cx(value), II("1.2.3.4.5", "O-9")
    gw.runtime.ports.patients.add(PatientRecord(II(value.get("root"), value.get("extension")),
                                                Person(other_ids=(OtherId(other),))))
    for source in body.iterfind(".//{*}dataSource"):  # ask for every domain
        source.getparent().remove(source)
    message_id = body.find("{*}id")
    return Case(body, [Expected("ITI-45", patients=(asked, str(other)),
                                query=body.find(".//{*}queryByParameter"),
                                query_id=message_id.get("root") if not message_id.get(
                                    "extension") else
                                f"{message_id.get('extension')}@{message_id.get('root')}")])


def case_iti55(gw: Audited) -> Case:
    body = sample_body(IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml", "PRPA_IN201305UV02")
    ids = tuple(cx(v) for v in body.iterfind(".//{*}livingSubjectId/{*}value")
                if v.get("extension"))
    return Case(body, [Expected("ITI-55", patients=ids,
                                query=body.find(".//{*}queryByParameter"))])


def case_ig_xcpd(gw: Audited) -> Case:
    """/ig/xcpd: the IPF request fanned out to GOOD, which knows the person as J-1."""
    from gateway.xcpd.fanout import DiscoveryFanOut
    from profiles.xcpd.query import parse_patient_discovery_query
    from tests.gateway.xcpd.peers import XcpdPeers

    body = sample_body(IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml", "PRPA_IN201305UV02")
    asked = parse_patient_discovery_query(body).parameters
    peers = XcpdPeers(behaviours=gw.peers.behaviours)
    peers.knows(GOOD, Person(names=asked.names, gender=asked.gender,
                             birth_time=asked.birth_time), "J-1")
    xca = gw.runtime.ports.xca
    gw.runtime.ports.xcpd = DiscoveryFanOut.beside(
        FanOut(OutboundClient(peers.transport()), xca.directory, pool=xca.pool),
        deadline_seconds=5)
    ids = tuple(cx(v) for v in body.iterfind(".//{*}livingSubjectId/{*}value")
                if v.get("extension"))
    theirs = f"J-1^^^&{GOOD}.1&ISO"
    return Case(body, [Expected("ITI-55", patients=(*ids, theirs),
                                query=body.find(".//{*}queryByParameter"))],
                outbound=[Expected("ITI-55", Side.INITIATOR, patients=(theirs,),
                                   partner=partner(GOOD).endpoint("ITI-55"))])


MERGE = "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml"
CASES: dict[tuple[str, str], Callable[[Audited], Case]] = {
    ("/xca/query", "urn:ihe:iti:2007:CrossGatewayQuery"): case_iti38,
    ("/xca/retrieve", "urn:ihe:iti:2007:CrossGatewayRetrieve"): case_iti39,
    ("/ig/query", "urn:ihe:iti:2007:RegistryStoredQuery"): case_ig_query,
    ("/ig/retrieve", "urn:ihe:iti:2007:RetrieveDocumentSet"): case_ig_retrieve,
    ("/xcpd", f"{HL7V3}PRPA_IN201305UV02:CrossGatewayPatientDiscovery"): case_iti55,
    ("/ig/xcpd", f"{HL7V3}PRPA_IN201305UV02:CrossGatewayPatientDiscovery"): case_ig_xcpd,
    ("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b"): case_iti42,
    ("/xds/registry", "urn:ihe:iti:2007:RegistryStoredQuery"): case_iti18,
    ("/xds/repository", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"): case_iti41,
    ("/xds/repository", "urn:ihe:iti:2007:RetrieveDocumentSet"): case_iti43,
    ("/xdr", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"): case_iti41,
    ("/pix", f"{HL7V3}PRPA_IN201301UV02"): _feed_case(
        "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml"),
    ("/pix", f"{HL7V3}PRPA_IN201302UV02"): _feed_case(
        "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml"),
    ("/pix", f"{HL7V3}PRPA_IN201304UV02"): _feed_case(MERGE),
    ("/pix", f"{HL7V3}PRPA_IN201309UV02"): case_iti45,
}


def implemented(*, awaiting_notes: bool = False) -> list:
    """Every implemented (route, transaction) of the table; ``awaiting_notes`` marks those
    whose handler does not note its facts yet as expected to fail (strictly)."""
    return [
        pytest.param(route, txn, id=f"{route.path}:{txn.id}:{txn.action.rsplit(':', 1)[-1]}",
                     marks=[pytest.mark.xfail(
                         strict=True, reason=f"{txn.id}'s handler does not note its facts yet")
                     ] if awaiting_notes and txn.id in AWAITING_NOTES else [])
        for route in ROUTES
        for txn in route.transactions
        if txn.implemented and route.role != "diagnostics"
    ]


# -- checks --------------------------------------------------------------------------------


def ack_code(body: etree._Element) -> str | None:
    """An HL7 v3 answer's acknowledgement typeCode (None for other answers)."""
    el = body.find(f".//{{{HL7V3[:-1]}}}acknowledgement/{{{HL7V3[:-1]}}}typeCode")
    return el.get("code") if el is not None else None


def c14n(xml: etree._Element | bytes) -> bytes:
    el = etree.fromstring(xml if isinstance(xml, bytes) else etree.tostring(xml))
    return etree.tostring(el, method="c14n", exclusive=True)


def check(message: AuditMessage, want: Expected, *, ours: str) -> None:
    """``message`` is the record ``want`` describes; ``ours`` is our URL for the route."""
    row = TRANSACTIONS[want.transaction]
    event_id, action = row.event(want.side)
    ev = message.event
    assert (ev.event_id.code, ev.event_id.system_name) == (event_id.code, "DCM")
    assert ev.action is not None and ev.action.value == (want.action or action.value)
    (event_type,) = ev.event_types
    assert (event_type.code, event_type.system_name) == (want.transaction,
                                                              "IHE Transactions")
    (source,) = message.participants_with_role(Role.SOURCE)
    (destination,) = message.participants_with_role(Role.DESTINATION)
    retrieve = want.transaction in ("ITI-39", "ITI-43")
    if want.side is Side.RESPONDER:  # the peer is the test client; we are the responder
        peer, us = (destination, source) if retrieve else (source, destination)
        assert peer.network_access_point_id == "127.0.0.1"
        assert us.user_id == ours and not us.user_is_requestor
    else:  # we called a partner
        them, us = (source, destination) if retrieve else (destination, source)
        assert them.user_id == want.partner
        assert us.user_is_requestor and us.alternative_user_id  # our process id
    objects = message.participant_objects
    if want.patients is not None:
        patients = [o.object_id for o in message.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)]
        assert sorted(patients) == sorted(want.patients)
    if row.kind.value == "query":
        (query,) = [o for o in objects if o.role is ParticipantObjectRole.QUERY]
        assert query.id_type.code == want.transaction
        if want.query is not None:
            assert query.query is not None and c14n(query.query) == c14n(want.query)
        else:
            assert query.query  # the payload is always there
        if want.query_id is not None:
            assert query.object_id == want.query_id
    if want.submission_set is not None:
        (ss,) = message.objects_with_id_type(ObjectIdType.SUBMISSION_SET)
        assert ss.object_id == want.submission_set
    if want.documents is not None:
        docs = message.objects_with_id_type(ObjectIdType.REPORT_NUMBER)
        assert sorted(d.object_id for d in docs) == sorted(want.documents)


def match(new: list[tuple[AuditEntry, AuditMessage]], wanted: list[Expected], *, ours: str,
          schema: etree.XMLSchema) -> None:
    """Exactly the wanted records, each checked and schema-valid (pairs in feed order)."""
    assert len(new) == len(wanted), [(e.event_id, e.event_type, e.action) for e, _ in new]
    remaining = list(new)
    for want in wanted:
        row = TRANSACTIONS[want.transaction]
        action = want.action or row.event(want.side)[1].value
        found = [(e, m) for e, m in remaining if (e.event_type, e.action) == (
            want.transaction, action) and (e.source_user == want.partner
                                           or e.destination_user == want.partner
                                           or want.partner is None)]
        assert found, f"no {want.transaction} {action} record"
        entry, message = found[0]
        remaining.remove(found[0])
        assert schema.validate(etree.fromstring(entry.xml)), schema.error_log.last_error
        check(message, want, ours=ours)


# -- every transaction of the table ----------------------------------------------------------


@pytest.mark.parametrize(("route", "txn"), implemented(awaiting_notes=True))
def test_every_transaction_leaves_its_record(gw, audit_schema, route: Route,
                                             txn: Transaction) -> None:
    make = CASES.get((route.path, txn.action))
    assert make is not None, f"no valid {txn.id} request for {route.path}: add one to CASES"
    case = make(gw)
    before = gw.records()
    answer = gw.post(route.path, txn.action, case.body, case.parts)
    assert answer.status == 200
    assert b"Failure" not in etree.tostring(answer.body), etree.tostring(answer.body)[:800]
    assert ack_code(answer.body) in (None, "AA")
    new = gw.new_records(before)
    assert all(e.outcome == 0 for e, _ in new)
    responder = [(e, m) for e, m in new if e.destination_user == f"http://localhost{route.path}"
                 or e.source_user == f"http://localhost{route.path}"]
    outbound = [r for r in new if r not in responder]
    match(responder, case.expected, ours=f"http://localhost{route.path}", schema=audit_schema)
    match(outbound, case.outbound, ours=f"http://localhost{route.path}", schema=audit_schema)


@pytest.mark.parametrize(("route", "txn"), implemented())
def test_a_fault_is_its_transactions_record_with_outcome_8(gw, audit_schema, route: Route,
                                                           txn: Transaction) -> None:
    """An empty Body is refused with a SOAP fault before the handler runs: still the
    transaction's own event (a feed: the announced one), outcome 8, never an alert."""
    before = gw.records()
    answer = gw.post(route.path, txn.action, b"")
    assert answer.status >= 400 and etree.QName(answer.body).localname == "Fault"
    new = gw.new_records(before)
    row = TRANSACTIONS[txn.id]
    event_id, action = row.event(Side.RESPONDER)
    if row.kind.value == "patient-feed":
        actions = [a.value for a in feed_actions(txn.action.rsplit(":", 1)[-1])]
    else:
        actions = [action.value]
    assert sorted(e.action for e, _ in new) == sorted(actions)
    for entry, _ in new:
        assert (entry.event_id, entry.event_type, entry.outcome) == (event_id.code, txn.id, 8)
        assert audit_schema.validate(etree.fromstring(entry.xml))


# -- error answers (outcome 4), one per kind -------------------------------------------------


def test_a_query_answered_with_an_error_is_outcome_4_with_its_payload(gw, audit_schema):
    body = find_documents()
    body.find(".//{*}AdhocQuery").set("id", "urn:uuid:00000000-0000-4000-8000-0000000000ff")
    before = gw.records()
    answer = gw.post("/xds/registry", "urn:ihe:iti:2007:RegistryStoredQuery", body)
    assert answer.body.get("status").endswith(":Failure")
    ((entry, message),) = gw.new_records(before)
    assert (entry.event_id, entry.event_type, entry.outcome) == ("110112", "ITI-18", 4)
    (query,) = [o for o in message.participant_objects if o.role is ParticipantObjectRole.QUERY]
    assert c14n(query.query) == c14n(body)
    assert audit_schema.validate(etree.fromstring(entry.xml))


def test_a_refused_submission_is_outcome_4_naming_its_submission_set(gw, audit_schema):
    before = gw.records()
    answer = gw.post("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b",
                     register(UNKNOWN_PATIENT))
    assert answer.body.get("status").endswith(":Failure")
    ((entry, message),) = gw.new_records(before)
    assert (entry.event_id, entry.event_type, entry.action, entry.outcome) == (
        "110107", "ITI-42", "C", 4)
    (ss,) = message.objects_with_id_type(ObjectIdType.SUBMISSION_SET)
    assert ss.object_id == SUBMISSION_SET_ID
    assert [o.object_id for o in message.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)] == [
        UNKNOWN_PATIENT]
    assert audit_schema.validate(etree.fromstring(entry.xml))


def test_a_retrieve_of_an_unknown_document_is_outcome_4_naming_it(gw, audit_schema):
    before = gw.records()
    answer = gw.post("/xds/repository", "urn:ihe:iti:2007:RetrieveDocumentSet",
                     retrieve("1.2.3.4.5.999"))
    assert answer.body.find("{*}RegistryResponse").get("status").endswith(":Failure")
    ((entry, message),) = gw.new_records(before)
    assert (entry.event_id, entry.event_type, entry.action, entry.outcome) == (
        "110106", "ITI-43", "R", 4)
    assert [d.object_id for d in message.objects_with_id_type(ObjectIdType.REPORT_NUMBER)] == [
        "1.2.3.4.5.999"]
    assert audit_schema.validate(etree.fromstring(entry.xml))


def test_a_refused_feed_is_a_failed_patient_record_not_an_alert(gw, audit_schema):
    sample = "pixv3-iti44-PRPA_IN201301UV02-add_two-subjects_invalid.xml"
    before = gw.records()
    answer = gw.post("/pix", f"{HL7V3}PRPA_IN201301UV02",
                     sample_body(IPF + sample, "PRPA_IN201301UV02"))
    assert ack_code(answer.body) == "AE"
    ((entry, _),) = gw.new_records(before)
    assert (entry.event_id, entry.event_type, entry.action, entry.outcome) == (
        "110110", "ITI-44", "C", 4)
    assert audit_schema.validate(etree.fromstring(entry.xml))


def test_a_partner_that_is_down_leaves_a_failed_initiator_record(gw, audit_schema):
    gw.peers.down(GOOD)
    before = gw.records()
    answer = gw.post("/ig/query", "urn:ihe:iti:2007:RegistryStoredQuery", find_documents())
    assert answer.status == 200
    outbound = [(e, m) for e, m in gw.new_records(before) if e.event_type == "ITI-38"]
    ((entry, message),) = outbound
    assert (entry.event_id, entry.action, entry.outcome) == ("110112", "E", 8)
    assert entry.destination_user == partner(GOOD).endpoint("ITI-38")
    assert audit_schema.validate(etree.fromstring(entry.xml))


# -- the MLLP PIX Manager (ITI-8, ITI-9) -------------------------------------------------------


def hl7(name: str) -> bytes:
    return (CONFORMANCE / IPF / name).read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def mllp(gw: Audited, messages: list[bytes]) -> list[bytes]:
    """Send over a real MLLP socket to the audited PIX Manager."""
    rt = gw.runtime

    async def scenario() -> list[bytes]:
        server = MllpServer(pix_manager(rt.ports.patients, rt.audit, endpoint="mllp://test"),
                            port=0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            answers = []
            for message in messages:
                writer.write(frame(message))
                await writer.drain()
                answers.append(await read_frame(reader))
            writer.close()
            return answers
        finally:
            await server.close()

    return asyncio.run(scenario())


def msa(answer: bytes) -> str:
    return re.search(rb"MSA\|(\w+)", answer).group(1).decode()


def test_mllp_feeds_and_queries_are_audited(gw, audit_schema):
    a01, a40, q23 = hl7("pix-iti8-ADT_A01.hl7"), hl7("pix-iti8-ADT_A40-merge.hl7"), hl7(
        "pix-iti9-QBP_Q23-request.hl7")
    before = gw.records()
    answers = mllp(gw, [a01])
    assert msa(answers[0]) == "AA"
    ((entry, message),) = gw.new_records(before)
    patient = "306563^^^&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO"  # PID-3's first usable id
    assert (entry.event_id, entry.event_type, entry.action, entry.outcome) == (
        "110110", "ITI-8", "C", 0)
    assert entry.source_address == "127.0.0.1"
    (obj,) = message.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)
    msh10 = a01.split(b"\r")[0].split(b"|")[9].decode()
    assert (obj.object_id, obj.detail("MSH-10")) == (patient, msh10.encode())
    assert audit_schema.validate(etree.fromstring(entry.xml))

    before = gw.records()
    assert msa(mllp(gw, [a40])[0]) == "AA"
    new = gw.new_records(before)
    assert sorted((e.event_type, e.action, e.outcome) for e, _ in new) == [
        ("ITI-8", "D", 0), ("ITI-8", "U", 0)]
    ids = {e.action: [o.object_id for o in m.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)]
           for e, m in new}
    assert ids == {"D": ["704686^^^&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO"],
                   "U": ["142025^^^&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO"]}
    assert all(audit_schema.validate(etree.fromstring(e.xml)) for e, _ in new)

    before = gw.records()
    mllp(gw, [q23])  # an unknown domain: AE, a failed query record with its payload
    ((entry, message),) = gw.new_records(before)
    assert (entry.event_id, entry.event_type, entry.action, entry.outcome) == (
        "110112", "ITI-9", "E", 4)
    (query,) = [o for o in message.participant_objects if o.role is ParticipantObjectRole.QUERY]
    assert query.query == q23 and query.object_id == "10501110"
    assert query.detail("MSH-10") == b"10501110"
    assert entry.source_user == "MESA_DEPARTMENT|MESA_PIX_CLIENT"
    assert entry.destination_user == "XYZ_HOSPITAL|MESA_XREF"
    assert audit_schema.validate(etree.fromstring(entry.xml))

    asked = II("1.3.6.1.4.1.21367.2005.1.1", "ABC10501")
    gw.runtime.ports.patients.add(PatientRecord(asked, Person(other_ids=(
        OtherId(II("1.2.3.4.5", "PID-9")),))))
    before = gw.records()
    assert msa(mllp(gw, [q23])[0]) == "AA"
    ((entry, message),) = gw.new_records(before)
    assert (entry.event_type, entry.outcome) == ("ITI-9", 0)
    patients = [o.object_id for o in message.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)]
    assert patients == [str(asked), "PID-9^^^&1.2.3.4.5&ISO"]  # asked, then found


def test_mllp_failures_are_audited(gw, audit_schema):
    before = gw.records()
    answers = mllp(gw, [hl7("pix-iti8-ADT_A01-incomplete_no-PID.hl7"), b"\x00garbage"])
    assert [msa(a) for a in answers] == ["AE", "AR"]
    new = sorted(gw.new_records(before), key=lambda r: r[0].event_id)
    assert [(e.event_id, e.event_type, e.outcome) for e, _ in new] == [
        ("110110", "ITI-8", 4), ("110113", "110144", 8)]
    assert all(audit_schema.validate(etree.fromstring(e.xml)) for e, _ in new)


WRITERS = {  # routes that store data: their record must be in the data's own commit
    ("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b"),
    ("/xds/repository", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"),
    ("/pix", f"{HL7V3}PRPA_IN201301UV02"),
    ("/pix", f"{HL7V3}PRPA_IN201302UV02"),
    ("/pix", f"{HL7V3}PRPA_IN201304UV02"),
}


@pytest.mark.parametrize(("path", "action"), sorted(WRITERS))
def test_a_data_commit_carries_its_record_even_if_finish_never_runs(gw, monkeypatch, path,
                                                                    action) -> None:
    """The process dies after the data commit, before the answer is closed: no record
    may be missing (issue 7: 'within the transaction's own commit')."""
    from gateway.audit.hook import RequestAudit

    monkeypatch.setattr(RequestAudit, "finish", lambda self, **outcome: None)
    case = CASES[(path, action)](gw)
    before = gw.records()
    answer = gw.post(path, action, case.body, case.parts)
    assert answer.status == 200 and ack_code(answer.body) in (None, "AA")
    new = gw.new_records(before)
    assert len(new) == len(case.expected)  # a merge: Delete and Update
    assert {(e.event_type, e.outcome) for e, _ in new} == {(case.expected[0].transaction, 0)}
