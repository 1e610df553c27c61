"""The initiating gateway against in-process partners: every way a partner can fail
gives PartialSuccess with one XDSUnavailableCommunity for it, others' results intact."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from gateway.client import OutboundClient
from gateway.partners.directory import PartnerDirectory
from gateway.xca.initiating import FanOut
from profiles.errors import GatewayError
from profiles.hl7v3.datatypes import II
from profiles.pix.ports import Correlation
from profiles.transaction import Context
from profiles.xca import ig_query
from profiles.xds.storedquery import QueryName, build
from tests.gateway.xca.peers import Peers, partner, query_answer

HOME = "1.2.3.1"
OUR_PID = "PAT-1^^^&1.2.3.1.5&ISO"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
GOOD1, GOOD2, DOWN, SLOW, FAULT, GARBAGE, LATE = (f"1.2.3.10{i}" for i in range(1, 8))
APPROVED = ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]


class FakeCorrelations:
    def __init__(self, communities: list[str]) -> None:
        self.communities = communities
        self.asked: list[II] = []

    def correlations(self, ours: II) -> list[Correlation]:
        self.asked.append(ours)
        return [Correlation(ours, II(f"{oid}.9", f"THEIRS-{oid}"), f"urn:oid:{oid}")
                for oid in self.communities]


class Signal(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.text:
            self.records.append(record)
            self.seen.set()


def context(fanout: FanOut) -> Context:
    return Context("req-1", "urn:ihe:iti:2007:RegistryStoredQuery", None, None, HOME,
                   datetime.now(UTC), ports=SimpleNamespace(xca=fanout))


def find_documents(**kw):
    return build(QueryName.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": f"'{OUR_PID}'",
                                            "$XDSDocumentEntryStatus": APPROVED}, **kw)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(16) as executor:
        yield executor


def fanout_for(peers: Peers, oids: list[str], pool, *, deadline: float = 1.0, **partner_kw):
    directory = PartnerDirectory([partner(o, **partner_kw.get(o, {})) for o in oids])
    return FanOut(OutboundClient(peers.transport()), directory, deadline_seconds=deadline,
                  pool=pool, correlations=FakeCorrelations(oids))


def answer(merged) -> etree._Element:
    """The merged AdhocQueryResponse as the consumer receives it (fragments spliced)."""
    return etree.fromstring(ig_query.serialize(merged).body_bytes())


def errors_of(el: etree._Element) -> dict[str, tuple[str, str]]:
    return {e.get("location"): (e.get("errorCode"), e.get("codeContext"))
            for e in el.iter(f"{{{RS}}}RegistryError")}


def test_every_failure_mode_gives_partial_success_and_keeps_the_others(pool):
    peers = Peers()
    peers.answers(GOOD1, 3)
    peers.answers(GOOD2, 2)
    peers.down(DOWN)
    peers.times_out(SLOW)
    peers.faults(FAULT)
    peers.garbage(GARBAGE)
    peers.late(LATE, 4)
    oids = [GOOD1, GOOD2, DOWN, SLOW, FAULT, GARBAGE, LATE]
    fanout = fanout_for(peers, oids, pool, deadline=1.0, **{SLOW: {"timeout": 0.2}})
    late_log = Signal("late answer dropped")
    logging.getLogger("gateway.xca").addHandler(late_log)
    try:
        merged = ig_query.handle(find_documents(), context(fanout))
        el = answer(merged)
        peers.release.set()
        assert late_log.seen.wait(10), "the late answer was not logged as dropped"
    finally:
        logging.getLogger("gateway.xca").removeHandler(late_log)
    wsdl.schema("ebrs").assertValid(el)
    assert el.get("status") == "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
    errors = errors_of(el)
    assert set(errors) == {f"urn:oid:{o}" for o in (DOWN, SLOW, FAULT, GARBAGE, LATE)}
    assert all(code == "XDSUnavailableCommunity" for code, _ in errors.values())
    assert "refused" in errors[f"urn:oid:{DOWN}"][1]
    assert "0.2 s" in errors[f"urn:oid:{SLOW}"][1]
    assert "Expected AdhocQueryRequest" in errors[f"urn:oid:{FAULT}"][1]
    assert "text/html" in errors[f"urn:oid:{GARBAGE}"][1]
    assert "deadline" in errors[f"urn:oid:{LATE}"][1]
    homes = [o.get("home") for o in el.iter(f"{{{RIM}}}ExtrinsicObject")]
    assert sorted(homes) == sorted([f"urn:oid:{GOOD1}"] * 3 + [f"urn:oid:{GOOD2}"] * 2)
    assert late_log.records[0].partner == f"urn:oid:{LATE}"


def test_each_partner_is_asked_with_its_own_patient_id(pool):
    peers = Peers()
    for oid in (GOOD1, GOOD2):
        peers.answers(oid, 1)
    fanout = fanout_for(peers, [GOOD1, GOOD2], pool)
    merged = ig_query.handle(find_documents(), context(fanout))
    assert not merged.errors
    sent = {}
    for r in peers.requests:
        env = etree.fromstring(r.body)
        value = env.find(".//{*}Slot[@name='$XDSDocumentEntryPatientId']/{*}ValueList/{*}Value")
        sent[r.partner.bare_oid] = value.text
    assert sent == {oid: f"'THEIRS-{oid}^^^&{oid}.9&ISO'" for oid in (GOOD1, GOOD2)}
    assert fanout.correlations.asked == [II("1.2.3.1.5", "PAT-1")]
    status = answer(merged).get("status")
    assert status == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def test_all_partners_failing_is_failure(pool):
    peers = Peers()
    peers.down(DOWN)
    peers.faults(FAULT)
    fanout = fanout_for(peers, [DOWN, FAULT], pool)
    el = answer(ig_query.handle(find_documents(), context(fanout)))
    assert el.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    assert len(errors_of(el)) == 2


def test_home_routes_to_that_community_only(pool):
    peers = Peers()
    peers.answers(GOOD1, 1)
    peers.answers(GOOD2, 1)
    fanout = fanout_for(peers, [GOOD1, GOOD2], pool)
    merged = ig_query.handle(find_documents(home=f"urn:oid:{GOOD2}"), context(fanout))
    assert [r.partner.bare_oid for r in peers.requests] == [GOOD2]
    assert {o.home for o in merged.objects} == {f"urn:oid:{GOOD2}"}


def test_id_based_query_needs_a_known_home(pool):
    fanout = fanout_for(Peers(), [GOOD1], pool)
    get_docs = {"$XDSDocumentEntryUniqueId": ["1.2.3"]}
    with pytest.raises(GatewayError) as missing:
        ig_query.handle(build(QueryName.GET_DOCUMENTS, get_docs), context(fanout))
    assert missing.value.code == "XDSMissingHomeCommunityId"
    with pytest.raises(GatewayError) as unknown:
        ig_query.handle(build(QueryName.GET_DOCUMENTS, get_docs, home="urn:oid:9.9.9"),
                        context(fanout))
    assert unknown.value.code == "XDSUnknownCommunity"


def test_id_based_query_goes_out_with_the_partners_home_form(pool):
    peers = Peers()
    peers.answers(GOOD1, 1)
    fanout = fanout_for(peers, [GOOD1], pool, **{GOOD1: {"urn_oid_prefix": False}})
    query = build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": ["1.2.3"]},
                  home=f"urn:oid:{GOOD1}")
    ig_query.handle(query, context(fanout))
    adhoc = etree.fromstring(peers.requests[0].body).find(".//{*}AdhocQuery")
    assert adhoc.get("home") == GOOD1


def test_a_fan_out_to_many_partners_is_bounded_by_the_pool():
    peers = Peers()
    oids = [f"1.2.4.{i}" for i in range(1, 41)]
    active, peak, lock = [0], [0], threading.Lock()
    body_for = {}
    for oid in oids:
        peers.answers(oid, 1)
        body_for[oid] = peers.behaviours[oid]

    def counting(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            threading.Event().wait(0.01)  # a partner taking a little while
            return body_for[request.partner.bare_oid](request)
        finally:
            with lock:
                active[0] -= 1

    for oid in oids:
        peers.behaviours[oid] = counting
    with ThreadPoolExecutor(4) as small:
        fanout = fanout_for(peers, oids, small, deadline=10)
        merged = ig_query.handle(find_documents(), context(fanout))
    assert len(merged.objects) == 40 and not merged.errors
    assert peak[0] <= 4


class FakeRegistry:
    def __init__(self, objects) -> None:
        self.objects, self.queries = objects, []

    def run_query(self, query):
        self.queries.append(query)
        return self.objects


def test_local_results_are_included_with_our_home(pool):
    from tests.profiles.xds.builders import document_entry

    peers = Peers()
    peers.answers(GOOD1, 2)
    fanout = fanout_for(peers, [GOOD1], pool)
    local = document_entry("urn:uuid:5a0c1e7e-0000-4000-8000-000000000001")
    fanout.registry = FakeRegistry([local])
    merged = ig_query.handle(find_documents(), context(fanout))
    el = answer(merged)
    wsdl.schema("ebrs").assertValid(el)
    homes = sorted(o.get("home") for o in el.iter(f"{{{RIM}}}ExtrinsicObject"))
    assert homes == sorted([f"urn:oid:{GOOD1}"] * 2 + [f"urn:oid:{HOME}"])
    assert fanout.registry.queries[0].one("$XDSDocumentEntryPatientId") == OUR_PID


def test_a_local_registry_failure_is_one_error_while_partners_answer(pool):
    peers = Peers()
    peers.answers(GOOD1, 1)
    fanout = fanout_for(peers, [GOOD1], pool)

    class Broken:
        def run_query(self, query):
            from profiles.errors import XDSTooManyResults

            raise XDSTooManyResults("more than 1000")

    fanout.registry = Broken()
    el = answer(ig_query.handle(find_documents(), context(fanout)))
    assert el.get("status") == "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
    assert errors_of(el) == {f"urn:oid:{HOME}": ("XDSTooManyResults", "more than 1000")}


def test_every_request_is_prepared_before_the_pool_handles_answers(pool):
    """Envelopes (and their XUA headers) are built in the calling thread, so a busy pool
    never delays the last request; answers are read by the per-core reader threads."""
    peers = Peers()
    oids = [f"1.2.5.{i}" for i in range(1, 9)]
    for oid in oids:
        peers.answers(oid, 1)
    signed_in, read_in = [], []
    fanout = fanout_for(peers, oids, pool)
    fanout.client.security = lambda partner, url, principal: signed_in.append(
        threading.current_thread()) or None
    reading = fanout._read_query
    fanout._read_query = lambda received: read_in.append(threading.current_thread().name) \
        or reading(received)
    merged = ig_query.handle(find_documents(), context(fanout))
    assert len(merged.objects) == len(oids) and not merged.errors
    assert signed_in == [threading.current_thread()] * len(oids)
    assert len(read_in) == len(oids) and all(n.startswith("xca-answers") for n in read_in)


def test_plain_answers_are_relayed_and_unusual_ones_read_whole(pool, monkeypatch):
    """The byte-for-byte relay (``profiles.xca.relay``) takes the plain answer; one with a
    comment hiding a fake end tag falls back to the tree and gives the same objects; a
    malformed one is still that partner's error alone."""
    from gateway.transport import response
    from gateway.xca import initiating

    split_results = []
    real_split = initiating.split_answer

    def counting_split(raw):
        split_results.append(real_split(raw))
        return split_results[-1]

    monkeypatch.setattr(initiating, "split_answer", counting_split)
    peers = Peers()
    peers.answers(GOOD1, 3)
    commented = query_answer(GOOD2, 2).replace(
        b"</rim:ExtrinsicObject>",
        b"<!-- </rim:ExtrinsicObject><rim:ExtrinsicObject id='urn:uuid:evil'> -->"
        b"</rim:ExtrinsicObject>", 1)
    peers.behaviours[GOOD2] = lambda r: response(200, "application/soap+xml", commented)
    broken = query_answer(FAULT, 2).replace(b"</rim:Slot>", b"", 1)
    peers.behaviours[FAULT] = lambda r: response(200, "application/soap+xml", broken)
    merged = ig_query.handle(find_documents(), context(fanout_for(peers, [GOOD1, GOOD2, FAULT],
                                                                  pool)))
    el = answer(merged)
    wsdl.schema("ebrs").assertValid(el)
    assert sum(s is not None for s in split_results) == 1  # GOOD1's answer only
    homes = [o.get("home") for o in el.iter(f"{{{RIM}}}ExtrinsicObject")]
    assert sorted(homes) == sorted([f"urn:oid:{GOOD1}"] * 3 + [f"urn:oid:{GOOD2}"] * 2)
    assert "urn:uuid:evil" not in {o.get("id") for o in el.iter(f"{{{RIM}}}ExtrinsicObject")}
    assert set(errors_of(el)) == {f"urn:oid:{FAULT}"}


def test_meanwhile_runs_while_every_call_is_in_flight(pool):
    """The calls' audit facts are made while the partners think: ``meanwhile`` runs once
    every request is on its way (here the partners answer only after it ran), and one
    that fails costs nothing but a log line."""
    from gateway.transport import response

    oids = ["1.2.6.1", "1.2.6.2"]
    peers, ran = Peers(), threading.Event()
    for oid in oids:
        body = query_answer(oid, 2)
        peers.behaviours[oid] = lambda r, body=body: (
            ran.wait(5), response(200, "application/soap+xml", body))[1]
    fanout = fanout_for(peers, oids, pool, deadline=10)
    calls = ig_query.plan_query(find_documents(), fanout, HOME, None).calls
    answers = fanout.query(calls, meanwhile=ran.set)
    assert ran.is_set() and len(peers.requests) == 2
    assert [type(a).__name__ for a in answers] == ["QueryAnswer", "QueryAnswer"]

    def fails() -> None:
        raise RuntimeError("a bug in the meanwhile work")

    for oid in oids:
        peers.answers(oid, 1)
    answers = fanout.query(calls, meanwhile=fails)
    assert [type(a).__name__ for a in answers] == ["QueryAnswer", "QueryAnswer"]


def test_each_calls_audit_fact_holds_the_query_sent_to_that_partner(pool):
    oids = ["1.2.7.1", "1.2.7.2"]
    peers = Peers()
    for oid in oids:
        peers.answers(oid, 1)
    fanout = fanout_for(peers, oids, pool)
    noted: list = []
    ctx = replace(context(fanout), audit=SimpleNamespace(note=lambda **f: noted.append(f)))
    ig_query.handle(find_documents(), ctx)
    calls = [f["outbound"] for f in noted if "outbound" in f]
    assert [c.home_community_id for c in calls] == [f"urn:oid:{o}" for o in oids]
    for call, request in zip(calls, sorted(peers.requests, key=lambda r: r.partner.bare_oid),
                             strict=True):
        sent = etree.fromstring(request.body).find(".//{*}AdhocQueryRequest")
        assert etree.tostring(sent, method="c14n", exclusive=True) == etree.tostring(
            etree.fromstring(call.query), method="c14n", exclusive=True)
