"""What auditing adds to a request as a partner sends it: served, mutual TLS, signed XUA.

    .venv/bin/python bench/audit_served.py [--requests 1000] [--block 20] [--database-url URL]

Two communities made by ``ihe-gateway init`` run side by side as real servers
(gunicorn, gthread workers, mutual TLS, as ``init`` configures them): one is
``ihe-gateway serve``, the other ``bench/serve_unaudited.py serve`` (the same
server with per-request auditing replaced by a no-op: a bench-only switch, the
gateway has none). Each knows two patients; five submissions are registered for
the first before timing starts.

A client holding each community's client certificate sends, over one kept-alive
connection per community, requests signed as our initiating gateway signs
them (``profiles.xua.build_security_header``: a fresh assertion and Timestamp
signature per request, so the replay cache inserts per request):

* **query**: ITI-38 FindDocuments on ``/xca/query`` (5 documents found),
* **register**: ITI-42 on ``/xds/registry``, a new submission set and document
  entry for the second patient each time (the data commit carries the record).

Blocks of ``--block`` requests alternate between the two servers (which goes
first alternates too); the server's own time per request, from its log line, is
printed beside. What auditing adds is the median over neighbouring block pairs
of the difference of their medians, with a 95 % bootstrap interval
(``bench/paired.py``). The time is the client's, from sending the request to reading
the whole answer; the record is written as the
gateway runs in production (a register's in its data commit, a query's in a
commit of its own before its answer is sent, which also inserts the query's XUA
replay token; the unaudited server inserts that at the gate, in a commit of its
own). Signing is done per block before the block is timed; ``--clients N``
splits each block over N connections. ``--database-url`` runs both servers on
that PostgreSQL database (their rows do not collide); default: each community's
own SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import requests
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.audit_workload import PRINCIPAL  # noqa: E402
from bench.paired import HEADER, paired  # noqa: E402
from certs.store import load_certificate, load_private_key  # noqa: E402
from gateway import demo  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.ports import SystemClock  # noqa: E402
from profiles.errors import WSA_NS  # noqa: E402
from profiles.xds.ebrim import submit_objects_request_to_xml  # noqa: E402
from profiles.xua import (  # noqa: E402
    IssuePolicy,
    Principal,
    SigningCredentials,
    build_security_header,
)
from tests.e2e.support import server_env  # noqa: E402
from tests.profiles.xds.builders import submission  # noqa: E402

S12 = "http://www.w3.org/2003/05/soap-envelope"
QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
FOUND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
QUERIED, REGISTERED = "PID-1^^^&1.2.3.4.5&ISO", "PID-2^^^&1.2.3.4.5&ISO"
ACTIONS = {
    "query": ("/xca/query", "urn:ihe:iti:2007:CrossGatewayQuery"),
    "register": ("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b"),
}


@dataclass
class Served:
    name: str
    gateway: demo.Gateway
    session: requests.Session
    credentials: SigningCredentials
    principal: Principal


def cli(*args: str, env: dict) -> None:
    subprocess.run([*demo.ihe_gateway_command(), *args], env=env, check=True,
                   capture_output=True)


def start(root: Path, name: str, audited: bool, env: dict) -> Served:
    gw = demo.init_community(root / name, demo.free_port(), env=env)
    for patient in (QUERIED, REGISTERED):
        cli("patients", "add", patient, "--config", str(gw.config), "--given", "Ann",
            "--family", "Bench", "--birth", "19700101", "--gender", "F", env=env)
    if audited:
        demo.start_server(gw, env=env)
    else:
        gw.log_path = gw.directory / "server.log"
        with gw.log_path.open("wb") as log:
            gw.process = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "serve_unaudited.py"), "serve",
                 "--config", str(gw.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
    session = demo.mtls_session(gw)
    demo.wait_until_ready(gw, session)
    principal = replace(PRINCIPAL, resource_id=QUERIED)
    credentials = SigningCredentials(
        key=load_private_key(gw.cert("client-key.pem")),
        certificate=load_certificate(gw.cert("client.pem")),
    )
    return Served(name, gw, session, credentials, principal)


def body(kind: str) -> bytes:
    if kind == "query":
        slots = "".join(
            f'<rim:Slot name="{n}"><rim:ValueList><rim:Value>{v}</rim:Value></rim:ValueList>'
            "</rim:Slot>"
            for n, v in (
                ("$XDSDocumentEntryPatientId", f"'{QUERIED.replace('&', '&amp;')}'"),
                ("$XDSDocumentEntryStatus",
                 "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"),
            )
        )
        return (
            f'<query:AdhocQueryRequest xmlns:query="{QUERY_NS}" xmlns:rim="{RIM_NS}">'
            '<query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>'
            f'<rim:AdhocQuery id="{FOUND}">{slots}</rim:AdhocQuery></query:AdhocQueryRequest>'
        ).encode()
    return registration(REGISTERED)


def registration(patient: str) -> bytes:
    """A new submission set and document entry (fresh uniqueIds) for ``patient``."""
    sub = submission()
    n = uuid.uuid4().int
    ss = replace(sub.submission_set, patient_id=patient, unique_id=f"2.25.{n}")
    docs = tuple(replace(d, patient_id=patient, unique_id=f"2.25.{n + 1 + i}")
                 for i, d in enumerate(sub.document_entries))
    return etree.tostring(submit_objects_request_to_xml(
        replace(sub, submission_set=ss, document_entries=docs)))


def envelope(served: Served, kind: str, payload: bytes | None = None) -> bytes:
    path, action = ACTIONS[kind]
    security = build_security_header(
        served.principal, credentials=served.credentials,
        policy=IssuePolicy(), clock=SystemClock(), soap_ns=S12,
    )
    head = (
        f'<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA_NS}"><s:Header>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address>"
        f'</a:ReplyTo><a:To s:mustUnderstand="true">{served.gateway.base_url}{path}</a:To>'
    ).encode()
    return (head + etree.tostring(security) + b"</s:Header><s:Body>"
            + (payload or body(kind)) + b"</s:Body></s:Envelope>")


def send(served: Served, kind: str, data: bytes,
         session: requests.Session | None = None) -> float:
    path, _ = ACTIONS[kind]
    started = time.perf_counter()
    resp = (session or served.session).post(
        served.gateway.base_url + path, data=data,
        headers={"Content-Type": "application/soap+xml; charset=UTF-8"}, timeout=30,
    )
    content = resp.content
    took = time.perf_counter() - started
    if resp.status_code != 200 or b"ResponseStatusType:Success" not in content:
        why = [x for x in served.gateway.server_log().splitlines() if "refused" in x][-1:]
        raise SystemExit(f"{served.name} {kind}: HTTP {resp.status_code} {why}\n"
                         f"{content[:1500]!r}")
    if kind == "query" and content.count(b"<rim:ExtrinsicObject") < 5:
        raise SystemExit(f"{served.name}: the query found fewer than 5 documents")
    return took


def measure(pair: list[Served], kind: str, requests_: int, block: int,
            clients: int) -> tuple[list[tuple[list[float], list[float]]], dict[str, float]]:
    """Each pair of neighbouring blocks' times (unaudited, audited), and requests per
    second per server over its blocks."""
    blocks: list[tuple[list[float], list[float]]] = []
    busy: dict[str, float] = {s.name: 0.0 for s in pair}
    sessions = {s.name: [demo.mtls_session(s.gateway) for _ in range(clients)] for s in pair}
    with ThreadPoolExecutor(clients) as pool:
        for n in range(max(2, requests_ // block)):
            times: dict[str, list[float]] = {}
            for served in pair if n % 2 == 0 else pair[::-1]:
                batch = [envelope(served, kind) for _ in range(block)]
                parts = [batch[i::clients] for i in range(clients)]
                started = time.perf_counter()
                done = pool.map(lambda work: [send(work[0], kind, data, work[1])
                                              for data in work[2]],
                                [(served, sessions[served.name][i], parts[i])
                                 for i in range(clients)])
                times[served.name] = [t for part in done for t in part]
                busy[served.name] += time.perf_counter() - started
            blocks.append((times["unaudited"], times["audited"]))
    for opened in sessions.values():
        for session in opened:
            session.close()
    done_per_server = len(blocks) * block
    return blocks, {name: done_per_server / seconds for name, seconds in busy.items()}


def server_durations(served: Served, kind: str) -> list[float]:
    """Milliseconds from the request's arrival to its answer being ready, as the server
    logs each one (``duration_ms`` of its "soap request" line), in order."""
    path, _ = ACTIONS[kind]
    durations = []
    for line in served.gateway.server_log().splitlines():
        if '"soap request"' in line:
            entry = json.loads(line)
            if entry.get("path") == path:
                durations.append(float(entry["duration_ms"]))
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per server and transaction")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1,
                        help="concurrent connections (requests of a block split among them)")
    parser.add_argument("--database-url", default=None, help="default: SQLite per community")
    parser.add_argument("--calibrate", action="store_true",
                        help="audit both servers: the added column is then the bench's own bias")
    args = parser.parse_args()
    env = server_env(args.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        pair: list[Served] = []
        try:
            pair = [start(Path(tmp), "audited", True, env),
                    start(Path(tmp), "unaudited", args.calibrate, env)]
            for served in pair:  # five submissions to find, and warm-up
                for _ in range(5):
                    data = envelope(served, "register", registration(QUERIED))
                    send(served, "register", data)
                for kind in ACTIONS:
                    for _ in range(50):
                        send(served, kind, envelope(served, kind))
            where = args.database_url.split("@")[-1] if args.database_url else "SQLite files"
            cfg = load_config(pair[0].gateway.config, environ={}).server
            print(f"# {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()}"
                  f" CPUs, database {where}, {cfg.workers} workers x {cfg.threads} threads, "
                  f"{args.requests} requests per server and transaction, blocks of "
                  f"{args.block}, {args.clients} client connection(s), load average "
                  f"{os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d}")
            print(f"{'':<10} {HEADER} {'req/s':>15} {'server ms':>17}")
            for kind in ("query", "register"):
                logged = {s.name: len(server_durations(s, kind)) for s in pair}
                blocks, rates = measure(pair, kind, args.requests, args.block, args.clients)
                added = paired(blocks)
                inside = {s.name: statistics.median(server_durations(s, kind)[logged[s.name]:])
                          for s in pair}
                print(f"{kind:<10} {added.row()} "
                      f"{rates['unaudited']:6.1f} -> {rates['audited']:6.1f} "
                      f"{inside['unaudited']:7.2f} -> {inside['audited']:6.2f}")
        finally:
            for served in pair:
                served.session.close()
                demo.stop_server(served.gateway)


if __name__ == "__main__":
    main()
