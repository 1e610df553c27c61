"""What auditing adds to a request as a partner sends it: served, mutual TLS, signed XUA.

    .venv/bin/python bench/audit_served.py [--requests 1000] [--block 50] [--database-url URL]

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
first alternates too) so drift falls on both. The time is the client's, from
sending the request to reading the whole answer; the record is written as the
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

from certs.store import load_certificate, load_private_key  # noqa: E402
from gateway import demo  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.ports import SystemClock  # noqa: E402
from profiles.errors import WSA_NS  # noqa: E402
from profiles.xds.ebrim import submit_objects_request_to_xml  # noqa: E402
from profiles.xua import (  # noqa: E402
    Code,
    IssuePolicy,
    Principal,
    SigningCredentials,
    build_security_header,
)
from profiles.xua.assertion import NHIN_PURPOSE, SNOMED_CT  # noqa: E402
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
    principal = Principal(
        subject_id="Karl S Skagerberg", organization="Example Community Hospital",
        organization_id="urn:oid:2.16.840.1.113883.3.7204.1",
        home_community_id="urn:oid:2.16.840.1.113883.3.7204",
        role=Code("307969004", SNOMED_CT, "SNOMED_CT", "Public Health"),
        purpose_of_use=Code("TREATMENT", NHIN_PURPOSE, "nhin-purpose", "Treatment"),
        name_id="CN=Karl S Skagerberg,O=Example Community Hospital,C=US",
        resource_id=QUERIED, npi="1234567890",
    )
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
            clients: int) -> dict[str, tuple[list[float], float]]:
    """Per server: every request's time, and requests per second over its blocks."""
    times: dict[str, list[float]] = {s.name: [] for s in pair}
    busy: dict[str, float] = {s.name: 0.0 for s in pair}
    sessions = {s.name: [demo.mtls_session(s.gateway) for _ in range(clients)] for s in pair}
    with ThreadPoolExecutor(clients) as pool:
        for n in range(max(1, requests_ // block)):
            for served in pair if n % 2 == 0 else pair[::-1]:
                batch = [envelope(served, kind) for _ in range(block)]
                parts = [batch[i::clients] for i in range(clients)]
                started = time.perf_counter()
                done = pool.map(lambda work: [send(work[0], kind, data, work[1])
                                              for data in work[2]],
                                [(served, sessions[served.name][i], parts[i])
                                 for i in range(clients)])
                for part in done:
                    times[served.name] += part
                busy[served.name] += time.perf_counter() - started
    for opened in sessions.values():
        for session in opened:
            session.close()
    return {name: (values, len(values) / busy[name]) for name, values in times.items()}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per server and transaction")
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--clients", type=int, default=1,
                        help="concurrent connections (requests of a block split among them)")
    parser.add_argument("--database-url", default=None, help="default: SQLite per community")
    args = parser.parse_args()
    env = server_env(args.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        pair: list[Served] = []
        try:
            pair = [start(Path(tmp), "audited", True, env),
                    start(Path(tmp), "unaudited", False, env)]
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
            print(f"{'':<20} {'median ms':>10} {'p95 ms':>8} {'req/s':>7}")
            for kind in ("query", "register"):
                measured = measure(pair, kind, args.requests, args.block, args.clients)
                (plain, plain_rate), (audited, rate) = measured["unaudited"], measured["audited"]
                for label, values, r in (("unaudited", plain, plain_rate),
                                         ("audited", audited, rate)):
                    print(f"{kind + ' ' + label:<20} {statistics.median(values) * 1e3:10.3f} "
                          f"{pct(values, 95) * 1e3:8.3f} {r:7.1f}")
                added = statistics.median(audited) - statistics.median(plain)
                added95 = pct(audited, 95) - pct(plain, 95)
                print(f"{kind + ' added':<20} {added * 1e3:+10.3f} {added95 * 1e3:+8.3f} "
                      f"{rate - plain_rate:+7.1f}   ({added / statistics.median(plain) * 100:+.1f}"
                      f" % of the median, {(rate / plain_rate - 1) * 100:+.1f} % req/s)")
        finally:
            for served in pair:
                served.session.close()
                demo.stop_server(served.gateway)


if __name__ == "__main__":
    main()
