"""Initiating-gateway fan-out: an ITI-18 to N simulated partners, each answering its
ITI-38 after a fixed delay with D documents; time against the slowest partner.

    .venv/bin/python bench/fanout.py [--partners 20 500] [--delay 0.2] [--documents 10]
                                     [--pool 512]

The partners are in-process (gateway.client.MockTransport): the figure is the
gateway's own cost (planning, threads, envelope parse, ebRIM to models, merge,
serialising the merged AdhocQueryResponse) on top of the partners' latency; TLS
handshakes are not included. Peak memory: tracemalloc's peak of Python allocations
during the run, and the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.client import MockTransport, OutboundClient, response  # noqa: E402
from gateway.partners.directory import PartnerDirectory  # noqa: E402
from gateway.xca.initiating import FanOut  # noqa: E402
from profiles.hl7v3.datatypes import II  # noqa: E402
from profiles.pix.ports import Correlation  # noqa: E402
from profiles.transaction import Context  # noqa: E402
from profiles.xca import ig_query  # noqa: E402
from profiles.xds.storedquery import QueryName, build  # noqa: E402
from tests.gateway.xca.peers import partner, query_answer  # noqa: E402


class Correlations:
    def __init__(self, oids):
        self.oids = oids

    def correlations(self, ours):
        return [Correlation(ours, II(f"{o}.9", "P"), f"urn:oid:{o}") for o in self.oids]


def run(n: int, delay: float, documents: int, pool: ThreadPoolExecutor, *,
        trace: bool = False) -> dict:
    oids = [f"1.2.840.99.{i}" for i in range(1, n + 1)]
    bodies = {o: query_answer(o, documents) for o in oids}

    def peer(request):
        threading.Event().wait(delay)  # the partner's latency
        return response(200, "application/soap+xml", bodies[request.partner.bare_oid])

    fanout = FanOut(OutboundClient(MockTransport(peer)),
                    PartnerDirectory([partner(o) for o in oids]), deadline_seconds=30,
                    pool=pool, correlations=Correlations(oids))
    ctx = Context("bench", "", None, None, "1.2.3.1", datetime.now(UTC),
                  ports=SimpleNamespace(xca=fanout))
    query = build(QueryName.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": "'P^^^&1.2.3.1.5&ISO'",
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]})
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    merged = ig_query.handle(query, ctx)
    el = ig_query.serialize(merged)
    from lxml import etree

    xml = etree.tostring(el)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    assert len(merged.objects) == n * documents and not merged.errors, merged.errors[:3]
    return {"partners": n, "elapsed": elapsed, "ratio": elapsed / delay,
            "peak_mib": peak / 2**20, "response_kib": len(xml) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", type=int, nargs="+", default=[20, 500])
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--documents", type=int, default=10)
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with ThreadPoolExecutor(args.pool, thread_name_prefix="bench") as pool:
        run(5, 0.01, 1, pool)  # warm-up: imports, schema caches
        for n in args.partners:
            results = [run(n, args.delay, args.documents, pool) for _ in range(args.repeat)]
            best = min(results, key=lambda r: r["elapsed"])
            traced = run(n, args.delay, args.documents, pool, trace=True)  # slower: memory only
            print(f"{n:4d} partners x {args.documents} docs, {args.delay * 1000:.0f} ms each, "
                  f"pool {args.pool}: best {best['elapsed'] * 1000:.0f} ms "
                  f"({best['ratio']:.2f}x the slowest partner), runs "
                  + ", ".join(f"{r['elapsed'] * 1000:.0f}" for r in results)
                  + f" ms; peak traced {traced['peak_mib']:.1f} MiB; "
                  f"response {best['response_kib']:.0f} KiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS of the process: {rss:.0f} MiB; threads alive: {threading.active_count()}")


if __name__ == "__main__":
    main()
