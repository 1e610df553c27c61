"""XCPD before XCA: an ITI-18 for our patient whom no partner is correlated with discovers
the person first, then queries the communities found; with discovery off, nothing is asked."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.client import OutboundClient
from gateway.config import Community, Limits, Xcpd
from gateway.partners.directory import PartnerDirectory
from gateway.patients.index import SqlPatientIndex
from gateway.store import migrate
from gateway.store.db import Database
from gateway.transport import HttpRequest, response
from gateway.xca.initiating import FanOut
from gateway.xcpd.fanout import DiscoveryFanOut
from gateway.xcpd.wiring import DiscoverFirst, hook_deadline, wire_discovery
from profiles.hl7v3.datatypes import II, PN, TS, gender
from profiles.hl7v3.patient import Person
from profiles.pix.ports import PatientRecord
from profiles.transaction import Context
from profiles.xca import ig_query
from profiles.xds.storedquery import QueryName, build
from tests.gateway.xca.peers import partner, query_answer
from tests.gateway.xcpd.peers import XcpdPeers

HOME, DOMAIN, DOD, PARTNER = "2.999.2", "2.999.2.1", "2.999.1", "2.999.3"
ALEX = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("M"), birth_time=TS("19700412"))
OURS = PatientRecord(II(DOMAIN, "V-500"), ALEX)
NOBODY = PatientRecord(II(DOMAIN, "V-501"), Person(names=(PN.of("Sam", "Nobody"),),
                                                   birth_time=TS("19500101")))
APPROVED = ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]


@pytest.fixture
def index(database_url: str) -> Iterator[SqlPatientIndex]:
    migrate.upgrade(database_url)
    database = Database(database_url)
    index = SqlPatientIndex(database)
    index.add(OURS)
    index.add(NOBODY)
    yield index
    database.dispose()


class Communities(XcpdPeers):
    """Each peer answers ITI-55 at /xcpd and ITI-38 (``docs`` documents) at /xca/query."""

    def serve(self, oid: str, person: Person | None, extension: str, docs: int) -> None:
        if person is None:
            self.no_match(oid)
        else:
            self.knows(oid, person, extension)
        xcpd = self.behaviours[oid]
        documents = query_answer(oid, docs)

        def answer(request: HttpRequest):
            if request.url.endswith("/xcpd"):
                return xcpd(request)
            return response(200, "application/soap+xml", documents)

        self.behaviours[oid] = answer

    def asked(self, path: str) -> list[str]:
        return [r.partner.bare_oid for r in self.requests if r.url.endswith(path)]

    def handler(self, request: HttpRequest):
        if request.url.endswith("/xcpd"):
            return super().handler(request)
        with self.lock:
            self.requests.append(request)
        return self.behaviours[request.partner.bare_oid](request)


@pytest.fixture
def peers() -> Communities:
    peers = Communities()
    peers.serve(DOD, ALEX, "D-1", 2)
    peers.serve(PARTNER, ALEX, "MRN-7", 1)
    return peers


@pytest.fixture
def xca(peers, index) -> Iterator[FanOut]:
    with ThreadPoolExecutor(8) as pool:
        fanout = FanOut(OutboundClient(peers.transport()),
                        PartnerDirectory([partner(DOD), partner(PARTNER)]), deadline_seconds=5,
                        pool=pool, correlations=index)
        fanout.discover_first = DiscoverFirst(DiscoveryFanOut.beside(fanout), index,
                                              f"urn:oid:{HOME}", None)
        yield fanout


def find_documents(record: PatientRecord):
    return build(QueryName.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": f"'{record.id}'",
                                            "$XDSDocumentEntryStatus": APPROVED})


def query(fanout: FanOut, record: PatientRecord):
    ctx = Context("req-1", ig_query.IG_ITI_18.action, None, None, f"urn:oid:{HOME}",
                  datetime.now(UTC), ports=SimpleNamespace(xca=fanout))
    return ig_query.handle(find_documents(record), ctx)


def test_an_uncorrelated_patient_is_discovered_then_queried(xca, peers, index):
    merged = query(xca, OURS)
    assert sorted(peers.asked("/xcpd")) == [DOD, PARTNER]
    assert sorted(peers.asked("/xca/query")) == [DOD, PARTNER]
    homes = sorted(o.home for o in merged.objects)
    assert homes == [f"urn:oid:{DOD}"] * 2 + [f"urn:oid:{PARTNER}"]
    assert not merged.errors
    # each partner was asked with its own id for the person
    sent = {r.partner.bare_oid: r.body for r in peers.requests if r.url.endswith("/xca/query")}
    assert b"D-1^^^&amp;2.999.1.1&amp;ISO" in sent[DOD]
    assert b"MRN-7^^^&amp;2.999.3.1&amp;ISO" in sent[PARTNER]
    # correlated now: the next query goes straight to XCA
    query(xca, OURS)
    assert sorted(peers.asked("/xcpd")) == [DOD, PARTNER]
    assert len(peers.asked("/xca/query")) == 4


def test_a_patient_nobody_knows_is_not_rediscovered_at_every_query(xca, peers):
    peers.serve(DOD, None, "", 0)
    peers.serve(PARTNER, None, "", 0)
    for _ in range(3):
        merged = query(xca, NOBODY)
        assert not merged.objects
    assert sorted(peers.asked("/xcpd")) == [DOD, PARTNER]  # once, not three times
    assert peers.asked("/xca/query") == []


def test_a_patient_we_do_not_hold_is_not_described_to_anyone(xca, peers):
    query(xca, PatientRecord(II(DOMAIN, "UNKNOWN-1")))
    assert peers.requests == [] and peers.bodies == []


def test_wiring_follows_the_discovery_setting(index, tmp_path: Path):
    for enabled in (True, False):
        fanout = FanOut(OutboundClient(None), PartnerDirectory([]))
        config = SimpleNamespace(xcpd=Xcpd(discovery=enabled), limits=Limits(),
                                 community=Community(HOME, "VA"))
        ports = SimpleNamespace(xca=fanout, patients=index, database=None, xcpd=None)
        wire_discovery(config, ports)
        assert isinstance(ports.xcpd, DiscoveryFanOut) and ports.xcpd.pool is fanout.pool
        assert isinstance(fanout.discover_first, DiscoverFirst) is enabled
        if enabled:  # 120 s per request, 60 s for the XCA fan-out: discovery gets 30 of 54
            assert fanout.discover_first.gateway.deadline_seconds == 30.0


def test_discovery_before_query_leaves_the_query_its_time():
    assert hook_deadline(30, 120, 96) == pytest.approx(21.6)  # the defaults
    assert hook_deadline(30, 120, 60) == 30
    assert hook_deadline(30, 10, 20) == 1.0
