"""XCPD initiating gateway: a PRPA_IN201305UV02 to ``/ig/xcpd`` fanned out to N simulated
partners, each answering a match after a fixed delay; time against the slowest partner.

    .venv/bin/python bench/discovery.py [--partners 10 100] [--delay 0.2] [--repeat 5]

Each run posts the request through the whole SOAP pipeline (``handle_soap`` on
``/ig/xcpd``: envelope, dispatch, N outbound PRPA_IN201305UV02 built and sent, N
answers parsed, each match verified against our record, its correlation upserted in
the patient index, the merged PRPA_IN201306UV02 built) and reads the answer to its
last byte. The partners are in process (``MockTransport``) and answer after
``--delay`` with the person as they hold him; the patient index is SQLite in a
temporary folder. The figure is the gateway's own cost on top of the partners'
latency; TLS and XUA signing are not included (see bench/fanout.py --xua for those).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.client import OutboundClient  # noqa: E402
from gateway.dispatch import route_for  # noqa: E402
from gateway.partners.directory import PartnerDirectory  # noqa: E402
from gateway.patients.index import SqlPatientIndex  # noqa: E402
from gateway.soap.service import Limits, SoapRequest, handle_soap  # noqa: E402
from gateway.store import migrate  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from gateway.xca.initiating import FanOut  # noqa: E402
from gateway.xcpd.fanout import DiscoveryFanOut  # noqa: E402
from profiles.hl7v3.datatypes import II, PN, TS, gender  # noqa: E402
from profiles.hl7v3.patient import Person  # noqa: E402
from profiles.hl7v3.wrapper import Device  # noqa: E402
from profiles.pix.ports import PatientRecord  # noqa: E402
from profiles.xcpd.models import PatientDiscoveryQuery, QueryParameters  # noqa: E402
from profiles.xcpd.query import patient_discovery_query_to_xml  # noqa: E402
from tests.gateway.xca.peers import partner  # noqa: E402
from tests.gateway.xcpd.peers import XcpdPeers  # noqa: E402

HOME, DOMAIN = "2.999.2", "2.999.2.1"
ACTION = "urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery"
LIMITS = Limits(max_message_bytes=50 * 2**20, max_attachment_bytes=2**30)
ALEX = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("M"), birth_time=TS("19700412"))


def request_envelope() -> bytes:
    from lxml import etree

    params = QueryParameters(names=ALEX.names, gender=ALEX.gender, birth_time=ALEX.birth_time,
                             ids=(II(DOMAIN, "V-1"),))
    query = PatientDiscoveryQuery.new(params, sender=Device(II("2.999.2.9")),
                                      receiver=Device(II(HOME), HOME), assigning_authority=DOMAIN)
    body = etree.tostring(patient_discovery_query_to_xml(query)).decode()
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
        f'<a:Action s:mustUnderstand="1">{ACTION}</a:Action><a:MessageID>urn:uuid:1'
        f"</a:MessageID></s:Header><s:Body>{body}</s:Body></s:Envelope>").encode()


def run_once(route, xcpd, index, payload: bytes) -> float:
    started = time.perf_counter()
    req = SoapRequest("/ig/xcpd", f'application/soap+xml; action="{ACTION}"',
                      io.BytesIO(payload), len(payload), None, "bench")
    answer = handle_soap(route, req, home_community_id=f"urn:oid:{HOME}", limits=LIMITS,
                         ports=SimpleNamespace(xcpd=xcpd, patients=index))
    body = b"".join(answer.body)
    elapsed = time.perf_counter() - started
    assert answer.status == 200 and body.count(b"<subject ") + body.count(b":subject ") > 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partners", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    route = route_for("/ig/xcpd", frozenset({"initiating_gateway"}))
    payload = request_envelope()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(512) as pool:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        database = Database(url, pool_size=8)
        index = SqlPatientIndex(database)
        index.add(PatientRecord(II(DOMAIN, "V-1"), ALEX))
        for n in args.partners:
            oids = [f"2.999.100.{i}" for i in range(n)]
            peers = XcpdPeers()
            for oid in oids:
                peers.knows(oid, ALEX, f"P-{oid}")
                answer = peers.behaviours[oid]
                peers.behaviours[oid] = (lambda a: lambda r: (time.sleep(args.delay), a(r))[1])(
                    answer)
            xca = FanOut(OutboundClient(peers.transport()),
                         PartnerDirectory([partner(o) for o in oids]), pool=pool)
            xcpd = DiscoveryFanOut.beside(xca, deadline_seconds=60)
            times = [run_once(route, xcpd, index, payload) for _ in range(args.repeat)]
            best, median = min(times), statistics.median(times)
            print(f"partners={n:4d} delay={args.delay:.3f}s best={best:.3f}s "
                  f"median={median:.3f}s overhead/partner="
                  f"{(median - args.delay) / n * 1000:.2f}ms")
        database.dispose()


if __name__ == "__main__":
    main()
