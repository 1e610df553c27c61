"""Initiating-gateway fan-out: an ITI-18 to N simulated partners, each answering its
ITI-38 after a fixed delay with D documents; time against the slowest partner.

    .venv/bin/python bench/fanout.py [--partners 20 500] [--delay 0.2] [--documents 10]
                                     [--pool 512] [--repeat 5] [--xua] [--audit]

Each run posts an ITI-18 FindDocuments envelope through the whole SOAP pipeline
(``gateway.soap.service.handle_soap`` on ``/ig/query``: envelope, dispatch, plan,
fan-out, merge, reply envelope) and reads the answer's body to its last byte; the
elapsed time is from the request to that byte. The partners are in process
(``MockTransport``): each answers after ``--delay`` from its request with an answer
built once before the runs, so the figure is the gateway's own cost on top of the
partners' latency; TLS handshakes are not included. ``--xua`` signs an assertion and
Timestamp per partner (RSA-2048) as a gateway with TLS configured does.

Printed per N: best and median of ``--repeat`` runs and their process CPU time (every
thread; less disturbed than elapsed time by other work on the machine); the floor measured
in the same process (lxml parsing the N answers and serialising their registry objects,
nothing else: one thread, then split over two threads); one more run under tracemalloc
(Python allocations only: lxml's trees are invisible to it) and the run's peak RSS over
the process's RSS before it (VmHWM, reset per run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree  # noqa: E402

from gateway.client import OutboundClient  # noqa: E402
from gateway.dispatch import route_for  # noqa: E402
from gateway.partners.directory import PartnerDirectory  # noqa: E402
from gateway.soap.service import Limits, SoapRequest, handle_soap  # noqa: E402
from gateway.transport import MockTransport, response  # noqa: E402
from gateway.xca.initiating import FanOut  # noqa: E402
from profiles.hl7v3.datatypes import II  # noqa: E402
from profiles.pix.ports import Correlation  # noqa: E402
from profiles.xds.storedquery import QueryName, build  # noqa: E402
from profiles.xml import parse_xml  # noqa: E402
from tests.gateway.xca.peers import envelope, partner, query_answer  # noqa: E402

HOME = "1.2.3.1"
ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
LIMITS = Limits(max_message_bytes=200 * 2**20, max_attachment_bytes=2**30)
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"


class Correlations:
    def __init__(self, oids):
        self.oids = oids

    def correlations(self, ours):
        return [Correlation(ours, II(f"{o}.9", "P"), f"urn:oid:{o}") for o in self.oids]


def iti18_request() -> bytes:
    from profiles.xca.query import stored_query_to_xml

    query = build(QueryName.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": "'P^^^&1.2.3.1.5&ISO'",
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]})
    raw = envelope(stored_query_to_xml(query), ACTION)
    env = etree.fromstring(raw)  # add the MessageID a consumer sends
    header = env[0]
    etree.SubElement(header, "{http://www.w3.org/2005/08/addressing}MessageID").text = \
        f"urn:uuid:{uuid.uuid4()}"
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def xua_header():
    """The production signer: system principal, RSA-2048 key, one assertion per partner."""
    from certs import authority
    from gateway.ports import SystemClock
    from gateway.xca.wiring import system_principal, xua_security
    from profiles.xua import AssertionCache, SigningCredentials

    ca = authority.create_authority("fan-out bench CA")
    leaf = authority.issue(ca, "initiating gateway")
    credentials = SigningCredentials(key=leaf.private_key, certificate=leaf.certificate)
    config = SimpleNamespace(community=SimpleNamespace(home_community_id=f"urn:oid:{HOME}",
                                                       name="bench"))
    return xua_security(credentials, system_principal(config), SystemClock(), AssertionCache())


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def auditor_on(url: str):
    """An Auditor as the gateway builds one, on a migrated database at ``url``: the
    request's records (its own and one per partner called) are durable before the answer
    leaves, as in production."""
    from gateway.audit.hook import Auditor
    from gateway.audit.queue import AuditQueue
    from gateway.store import migrate
    from gateway.store.db import Database
    from profiles.atna.codes import AuditSourceType
    from profiles.atna.events import Endpoint
    from profiles.atna.message import AuditSourceIdentification

    migrate.upgrade(url)
    source = AuditSourceIdentification(f"urn:oid:{HOME}",
                                       type_codes=(AuditSourceType.APPLICATION_SERVER,))
    return Auditor(AuditQueue(Database(url)), source,
                   node=Endpoint("ihe-gateway", host="gateway.example.org"))


def run(n: int, delay: float, documents: int, pool: ThreadPoolExecutor, *,
        security=None, auditor=None, trace: bool = False) -> dict:
    oids = [f"1.2.840.99.{i}" for i in range(1, n + 1)]
    bodies = {o: query_answer(o, documents) for o in oids}
    request = iti18_request()

    def peer(req):
        threading.Event().wait(delay)  # the partner's latency, in the calling thread
        return response(200, "application/soap+xml", bodies[req.partner.bare_oid])

    fanout = FanOut(OutboundClient(MockTransport(peer), security=security),
                    PartnerDirectory([partner(o) for o in oids]), deadline_seconds=30,
                    pool=pool, correlations=Correlations(oids))
    route = route_for("/ig/query", frozenset({"initiating_gateway"}))
    soap = SoapRequest("/ig/query", f'application/soap+xml; charset=UTF-8; action="{ACTION}"',
                       io.BytesIO(request), len(request), None, "bench")
    rss_before = rss_kib("VmRSS")
    reset_peak_rss()
    if trace:
        tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    audit = None
    if auditor is not None:
        from gateway.audit.hook import RequestFacts
        audit = auditor.request(RequestFacts(uuid.uuid4().hex, "https://gw/ig/query", "10.1.2.3"))
    answer = handle_soap(route, soap, home_community_id=HOME, limits=LIMITS,
                         ports=SimpleNamespace(xca=fanout), audit=audit)
    size = 0
    tail = b""
    for chunk in answer.body:  # to the last byte
        size += len(chunk)
        tail = chunk
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    peak_rss = rss_kib("VmHWM") - rss_before
    assert answer.status == 200 and tail.endswith(b"Envelope>"), answer.status
    if not trace:  # the answer is whole and right: every entry, each community's home
        raw = b"".join(answer.body)
        doc = parse_xml(raw, max_bytes=LIMITS.max_message_bytes)
        body = doc[-1][0]
        assert body.get("status").endswith(":Success"), body.get("status")
        homes = [e.get("home") for e in body.iterfind(f"{{{RIM}}}RegistryObjectList/*")]
        assert len(homes) == n * documents and len(set(homes)) == n, (len(homes), n)
    return {"elapsed": elapsed, "cpu": cpu, "peak_mib": peak / 2**20, "response_kib": size / 1024,
            "peak_rss_mib": peak_rss / 1024, "rss_mib": rss_kib("VmHWM") / 1024}


def floor(n: int, documents: int) -> tuple[float, float, float]:
    """lxml alone: parse each answer, serialise its registry objects; 1 thread, 2 threads."""
    bodies = [query_answer(f"1.2.840.99.{i}", documents) for i in range(1, n + 1)]

    def work(chunk):
        out = []
        for b in chunk:
            lst = parse_xml(b).find(f".//{{{RIM}}}RegistryObjectList")
            out += [etree.tostring(ch) for ch in lst]
        return out

    started, cpu_started = time.perf_counter(), time.process_time()
    work(bodies)
    one, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    with ThreadPoolExecutor(2) as two_threads:
        started = time.perf_counter()
        list(two_threads.map(work, [bodies[0::2], bodies[1::2]]))
        two = time.perf_counter() - started
    return one, two, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", type=int, nargs="+", default=[20, 500])
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--documents", type=int, default=10)
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--xua", action="store_true", help="sign XUA per partner")
    parser.add_argument("--audit", action="store_true",
                        help="audit as in production (SQLite file): records durable first")
    args = parser.parse_args()
    security = xua_header() if args.xua else None
    spool = tempfile.TemporaryDirectory()
    auditor = auditor_on(f"sqlite:///{spool.name}/audit.db") if args.audit else None
    with ThreadPoolExecutor(args.pool, thread_name_prefix="bench") as pool:
        extras = {"security": security, "auditor": auditor}
        run(5, 0.01, 1, pool, **extras)  # warm-up: imports, schema caches
        run(max(args.partners), 0.01, 1, pool, **extras)  # start the pool's threads
        for n in args.partners:
            results = [run(n, args.delay, args.documents, pool, **extras)
                       for _ in range(args.repeat)]
            times = [r["elapsed"] for r in results]
            best, median = min(times), statistics.median(times)
            one, two, floor_cpu = min(floor(n, args.documents) for _ in range(3))
            cpu = statistics.median(r["cpu"] for r in results)
            traced = run(n, args.delay, args.documents, pool, **extras, trace=True)
            print(f"{n:4d} partners x {args.documents} docs, {args.delay * 1000:.0f} ms each, "
                  f"pool {args.pool}, XUA {'on' if args.xua else 'off'}, "
                  f"audit {'on' if args.audit else 'off'}: "
                  f"best {best * 1000:.0f} ms ({best / args.delay:.2f}x the slowest partner), "
                  f"median {median * 1000:.0f} ms ({median / args.delay:.2f}x); runs "
                  + ", ".join(f"{t * 1000:.0f}" for t in times)
                  + f" ms; CPU {cpu * 1000:.0f} ms (median); floor {one * 1000:.0f} ms on 1 "
                  f"thread (CPU {floor_cpu * 1000:.0f} ms), {two * 1000:.0f} ms on 2; "
                  f"peak RSS +{max(r['peak_rss_mib'] for r in results):.0f} MiB "
                  f"(to {max(r['rss_mib'] for r in results):.0f} MiB); "
                  f"peak traced {traced['peak_mib']:.1f} MiB; "
                  f"response {results[0]['response_kib']:.0f} KiB", flush=True)
    print(f"threads alive at the end: {threading.active_count()}")


if __name__ == "__main__":
    main()
