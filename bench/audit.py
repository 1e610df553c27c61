"""What auditing adds to a transaction in process: the same requests with and without.

    .venv/bin/python bench/audit.py [--requests 2000] [--block 20] [--database-url URL]
                                    [--only register query local-query] [--standin]
                                    [--breakdown]

By default the gateway's own transactions (``bench/audit_gateway.py``): a community
made by ``ihe-gateway init``, its runtime started in this process as a server worker
starts it, and each request run as the HTTP view runs it, without HTTP or TLS:

* **register**: ITI-42 from a local source: the record joins the data commit;
* **query**: ITI-38 as a partner sends it, a freshly signed assertion verified by the
  XUA gate: the record shares the commit of the assertion's replay token;
* **local-query**: ITI-18 from a local consumer (mutual TLS alone, no XUA): the record
  needs a commit of its own (relaxed: ``gateway/store/relaxed.py``), before the answer.

``--standin`` runs registry-like stand-in handlers instead (``bench/audit_workload.py``,
the bench of earlier sessions), whose transactions cost a fraction of the real ones.

The two modes alternate in blocks of ``--block`` (``bench/paired.py``): the added cost
is the median over neighbouring block pairs of the difference of their medians, with a
95 % bootstrap interval; in % of the unaudited median. The time is to the answer being
ready (audited: its record committed); thread CPU time is printed too. No sender runs
(indexing and delivery are off the request path). ``--breakdown`` times the pieces of
one record instead (stand-in workload). Default database: a SQLite file (WAL,
synchronous=FULL, as the gateway runs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree  # noqa: E402

from bench.audit_gateway import GatewayWorkload  # noqa: E402
from bench.audit_workload import QUERY, Workload  # noqa: E402
from bench.paired import HEADER, Added, paired  # noqa: E402
from gateway.audit.hook import RequestFacts  # noqa: E402
from profiles.atna.codec import audit_message_to_bytes  # noqa: E402
from profiles.atna.recipe import rebuild  # noqa: E402
from profiles.atna.record import audit_record  # noqa: E402
from tests.e2e.support import server_env  # noqa: E402

KINDS = ("register", "query", "local-query")
STANDIN = {"register": "register", "query": "query+xua", "local-query": "query"}


def measure(
    work: Workload | GatewayWorkload, kind: str, requests: int, block: int
) -> tuple[Added, Added]:
    """(time to the answer ready, thread CPU) added, from alternating block pairs."""
    if isinstance(work, Workload):
        kind = STANDIN[kind]
    for audited in (False, True, False, True):  # warm both paths
        for data in work.requests(kind, 50):
            work.one(kind, audited, data)
    walls, cpus = [], []
    for n in range(max(2, requests // block)):
        measured: dict[bool, list[tuple[float, float]]] = {}
        for audited in ((False, True) if n % 2 == 0 else (True, False)):
            measured[audited] = [work.one(kind, audited, data)
                                 for data in work.requests(kind, block)]
        walls.append(([w for w, _ in measured[False]], [w for w, _ in measured[True]]))
        cpus.append(([c for _, c in measured[False]], [c for _, c in measured[True]]))
    return paired(walls), paired(cpus)


def breakdown(url: str, n: int = 1000) -> list[tuple[str, float]]:
    """Median microseconds of the pieces a record costs (what the profile showed)."""
    work = Workload(url)
    database, auditor, data = work.database, work.auditor, work.data
    audit = auditor.request(RequestFacts("r", "https://gw/xca/query", "10.1.2.3", "CN=p"))
    audit.known(transaction="ITI-38", message_id="urn:uuid:m")
    body = etree.fromstring(data["query"]).find(f".//{{{QUERY}}}AdhocQueryRequest")
    audit.note(query=etree.tostring(body), query_id="urn:uuid:q", patient_ids=["P-1^^^&1&ISO"])
    queue = auditor.queue
    recipe = audit._notes_records("success", None)[0]
    (message,) = rebuild(recipe)
    xml = audit_message_to_bytes(message)

    def timed(fn) -> float:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1e6

    def in_open_transaction(fn) -> float:
        with database.session() as session:
            return timed(lambda: fn(session))

    def commit(rows: int) -> None:
        with database.session() as session:
            session.connection()
            if rows:
                queue.stage(session, [recipe])

    try:
        return [
            (f"request path: the record's recipe ({len(recipe)} bytes of JSON)",
             timed(lambda: audit._notes_records("success", None))),
            ("request path: its inbox row, in an open transaction",
             in_open_transaction(lambda s: queue.stage(s, [recipe]))),
            ("request path, no data: a transaction of its own with that row",
             timed(lambda: commit(1))),
            ("  for scale: a transaction that writes nothing", timed(lambda: commit(0))),
            (f"indexer: build the AuditMessage from the recipe ({len(xml)} bytes of XML)",
             timed(lambda: rebuild(recipe))),
            ("indexer: serialise it to XML", timed(lambda: audit_message_to_bytes(message))),
            ("indexer: serialise + index (record_id, search fields)",
             timed(lambda: audit_record(message))),
            ("old request path: the XML as an indexed row + terms + delivery rows",
             in_open_transaction(lambda s: queue.enqueue(s, audit_record(message)))),
        ]
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per mode and transaction")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--breakdown", action="store_true", help="time the pieces instead")
    parser.add_argument("--standin", action="store_true",
                        help="registry-like stand-in handlers instead of the gateway's own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        where = url.split("@")[-1] if "@" in url else url.split(":", 1)[0] + " file"
        load = os.getloadavg()[0]
        if args.breakdown:
            print(f"# {platform.machine()}, Python {platform.python_version()}, database "
                  f"{where}, load average {load:.1f}, {datetime.now(UTC):%Y-%m-%d}")
            for what, us in breakdown(url):
                print(f"{us:9.1f} us  {what}")
            return
        work = (Workload(url) if args.standin else
                GatewayWorkload(Path(tmp), server_env(args.database_url)))
        try:
            results = [(kind, *measure(work, kind, args.requests, args.block))
                       for kind in args.only]
        finally:
            work.database.dispose()
        print(f"# {platform.machine()}, Python {platform.python_version()}, database {where},"
              f" {'stand-in' if args.standin else 'the gateway' + chr(39) + 's own'} handlers,"
              f" {args.requests} requests per mode and transaction in blocks of {args.block},"
              f" load average {load:.1f} -> {os.getloadavg()[0]:.1f},"
              f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"{'':<21} {HEADER}")
        for kind, wall, cpu in results:
            print(f"{kind + ' (time)':<21} {wall.row()}")
            print(f"{kind + ' (CPU)':<21} {cpu.row()}")


if __name__ == "__main__":
    main()
