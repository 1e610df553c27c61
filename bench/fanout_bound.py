"""How fast could a 500-partner fan-out be on this machine? Lower bounds for the 500 x 10
case of ``bench/fanout.py``, with the gateway's own work taken away step by step.

    .venv/bin/python bench/fanout_bound.py [--partners 500] [--documents 10]
                                           [--delay 0.2] [--repeat 7]

An initiating gateway that relays partners' objects must at least check every byte of
every answer (a malformed answer must become that partner's error, not a broken merged
reply). The least that check costs here is libxml2's pass with no tree and no callbacks,
as ``profiles.xmlcheck`` runs it (with its search for CDATA sections, ~10 % of it; raw
libxml2 through ctypes measured the same as lxml's pass without that search). Printed:

1. per answer, one thread: that pass, and the gateway's whole read of the answer
   (``FanOut._read_query``: the pass, the tag scan, the head parsed, the fragments);
2. both over the N answers on one thread and split over two (wall and process CPU);
3. two idealised fan-outs where every answer is due exactly ``--delay`` after the start
   (nothing to prepare or send) and gets only the pass (no head, no objects, no merge,
   no reply), timed from the start to the end of the last pass:
   ``threads``: a thread per call, as the gateway does it (each waits until due, then
   hands the bytes to two reader threads); ``one I/O thread``: an event loop's shape
   (one thread hands every answer to the two readers when due); and the event loop's
   shape again with the gateway's whole read instead of the pass (still no requests,
   merge or reply).

What a gateway can do is slower than (3): it also prepares and sends N requests
(spreading the answers' arrival), reads each answer's head and objects, merges and
writes the reply.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.client import OutboundClient  # noqa: E402
from gateway.partners.directory import PartnerDirectory  # noqa: E402
from gateway.transport import MockTransport, response  # noqa: E402
from gateway.xca.initiating import FanOut  # noqa: E402
from profiles import xmlcheck  # noqa: E402
from profiles.xca.ports import QueryCall  # noqa: E402
from profiles.xds.storedquery import QueryName, build  # noqa: E402
from tests.gateway.xca.peers import partner, query_answer  # noqa: E402


def received_answers(n: int, documents: int) -> tuple[FanOut, list]:
    """N answers as the gateway's client has them once read off the wire."""
    oids = [f"1.2.840.99.{i}" for i in range(1, n + 1)]
    bodies = {o: query_answer(o, documents) for o in oids}
    fanout = FanOut(OutboundClient(MockTransport(
        lambda req: response(200, "application/soap+xml", bodies[req.partner.bare_oid]))),
        PartnerDirectory([partner(o) for o in oids]))
    query = build(QueryName.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": "'P^^^&1.2.3.1.5&ISO'",
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]})
    received = [fanout.client.receive(fanout._prepare_query(QueryCall(o, query)))
                for o in oids]
    return fanout, received


def on_threads(work: Callable, items: list, threads: int) -> tuple[float, float]:
    """(wall, process CPU) in ms for ``work`` on every item, split over ``threads``."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, items[:threads]))  # the threads started, their parsers made
        started, cpu = time.perf_counter(), time.process_time()
        list(pool.map(lambda part: [work(x) for x in part],
                      [items[i::threads] for i in range(threads)]))
        return ((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000)


def thread_per_call(answers: list[bytes], delay: float, calls: ThreadPoolExecutor,
                    readers: ThreadPoolExecutor) -> float:
    """Each answer's call thread waits until due, then hands its bytes to a reader."""
    started = time.perf_counter()
    due = started + delay

    def call(raw: bytes):
        threading.Event().wait(max(0.0, due - time.perf_counter()))
        return readers.submit(xmlcheck.plain_well_formed, raw)

    handed = [f.result() for f in [calls.submit(call, raw) for raw in answers]]
    wait(handed)
    return time.perf_counter() - started


def one_io_thread(answers: list, delay: float, readers: ThreadPoolExecutor,
                  read: Callable = xmlcheck.plain_well_formed) -> float:
    """One thread hands every answer to the readers when due (all due at once)."""
    started = time.perf_counter()
    handed: list = []

    def loop() -> None:
        threading.Event().wait(max(0.0, started + delay - time.perf_counter()))
        handed.extend(readers.submit(read, answer) for answer in answers)

    io = threading.Thread(target=loop)
    io.start()
    io.join()
    wait(handed)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", type=int, default=500)
    parser.add_argument("--documents", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, delay = args.partners, args.delay
    fanout, received = received_answers(n, args.documents)
    answers = [r.root for r in received]
    print(f"{n} answers of {len(answers[0]):,} bytes ({sum(map(len, answers)) / 2**20:.1f} MiB)")
    for name, work, items in (("libxml2 pass", xmlcheck.plain_well_formed, answers),
                              ("whole read", fanout._read_query, received)):
        one = min(on_threads(work, items, 1) for _ in range(3))
        two = min(on_threads(work, items, 2) for _ in range(3))
        print(f"{name}: {one[0] * 1000 / n:.0f} us per answer; {n} answers: 1 thread "
              f"{one[0]:.0f} ms (CPU {one[1]:.0f}), 2 threads {two[0]:.0f} ms (CPU {two[1]:.0f})")
    with ThreadPoolExecutor(n) as calls, ThreadPoolExecutor(2) as readers:
        thread_per_call(answers, 0.01, calls, readers)  # every thread started
        shapes = {"threads": lambda: thread_per_call(answers, delay, calls, readers),
                  "one I/O thread": lambda: one_io_thread(answers, delay, readers),
                  "one I/O thread, whole read": lambda: one_io_thread(
                      received, delay, readers, fanout._read_query)}
        times: dict[str, list[float]] = {name: [] for name in shapes}
        for _ in range(args.repeat):  # alternated, so drift in the machine's speed is shared
            for name, shape in shapes.items():
                times[name].append(shape())
    for name, elapsed in times.items():
        best, median = min(elapsed), statistics.median(elapsed)
        what = "" if "whole" in name else ", the libxml2 pass only"
        print(f"idealised fan-out, {name}{what}: best {best * 1000:.0f} ms "
              f"({best / delay:.2f}x), median {median * 1000:.0f} ms ({median / delay:.2f}x); "
              "runs " + ", ".join(f"{t * 1000:.0f}" for t in elapsed))


if __name__ == "__main__":
    main()
