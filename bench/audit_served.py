"""What auditing adds to a request as it is served: mutual TLS, HTTP, the real handlers.

    .venv/bin/python bench/audit_served.py [--requests 1000] [--block 20] [--clients 1]
                                           [--only query register local-query]
                                           [--calibrate] [--database-url URL]

A community made by ``ihe-gateway init`` runs as a real server (gunicorn, gthread
workers, mutual TLS, as ``init`` configures it) through ``bench/serve_audit_switch.py``:
``ihe-gateway serve`` with a bench-only switch, a request carrying ``X-Bench-Audit:
off`` is not audited (the gateway itself has no such switch). So both modes run on
one server, one database and the same worker processes, and the comparison carries no
difference between two servers. It knows two patients; five submissions are
registered for the first before timing starts.

A client holding the community's client certificate sends, over one kept-alive
connection (``--clients N``: N), three transactions:

* **query**: ITI-38 FindDocuments on ``/xca/query`` as a partner sends it, a fresh
  assertion and Timestamp signature per request (``build_security_header``, as our
  initiating gateway signs), 5 documents found. The record shares the commit of the
  assertion's replay token (unaudited, the gate commits the token alone);
* **register**: ITI-42 on ``/xds/registry`` from a local source (no XUA), a new
  submission set and document entry for the second patient each time: the record
  joins the data commit;
* **local-query**: ITI-18 FindDocuments on ``/xds/registry`` from a local consumer
  (mutual TLS alone, no XUA), 5 documents found: the record needs a commit of its
  own before the answer is sent.

Blocks of ``--block`` requests alternate between the two modes (which goes first
alternates too); what auditing adds is the median over neighbouring block pairs of
the difference of their medians, with a 95 % bootstrap interval (``bench/paired.py``).
The time is the client's, from sending the request to reading the whole answer; the
server's own time per request (``duration_ms`` of its log line) is printed beside.
Signing is done per block before the block is timed. ``--calibrate`` audits both
modes: the added column is then the bench's own bias. ``--database-url`` runs the
server on that PostgreSQL database; default: the community's own SQLite file.
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
from bench.serve_audit_switch import SWITCH  # noqa: E402
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
ACTIONS = {  # kind: (path, action, signed with XUA)
    "query": ("/xca/query", "urn:ihe:iti:2007:CrossGatewayQuery", True),
    "register": ("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b", False),
    "local-query": ("/xds/registry", "urn:ihe:iti:2007:RegistryStoredQuery", False),
}
MODES = {False: "off", True: "on"}  # audited: X-Bench-Audit


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


def start(root: Path, env: dict) -> Served:
    """A new community served through the bench-only audit switch."""
    gw = demo.init_community(root / "bench", demo.free_port(), env=env)
    for patient in (QUERIED, REGISTERED):
        cli("patients", "add", patient, "--config", str(gw.config), "--given", "Ann",
            "--family", "Bench", "--birth", "19700101", "--gender", "F", env=env)
    gw.log_path = gw.directory / "server.log"
    with gw.log_path.open("wb") as log:
        gw.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "serve_audit_switch.py"), "serve",
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
    return Served("bench", gw, session, credentials, principal)


def body(kind: str) -> bytes:
    if kind in ("query", "local-query"):
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
    """A SOAP 1.2 envelope for ``kind``; a signed kind's with a fresh XUA header."""
    path, action, signed = ACTIONS[kind]
    security = etree.tostring(build_security_header(
        served.principal, credentials=served.credentials,
        policy=IssuePolicy(), clock=SystemClock(), soap_ns=S12,
    )) if signed else b""
    head = (
        f'<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA_NS}"><s:Header>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address>"
        f'</a:ReplyTo><a:To s:mustUnderstand="true">{served.gateway.base_url}{path}</a:To>'
    ).encode()
    return (head + security + b"</s:Header><s:Body>" + (payload or body(kind))
            + b"</s:Body></s:Envelope>")


def send(served: Served, kind: str, data: bytes, audited: bool = True,
         session: requests.Session | None = None, calibrate: bool = False) -> float:
    """One request, audited or not; its log line's request id says which mode it
    belongs to (``calibrate``: audited whatever the mode)."""
    path = ACTIONS[kind][0]
    mode = MODES[audited]
    started = time.perf_counter()
    resp = (session or served.session).post(
        served.gateway.base_url + path, data=data,
        headers={"Content-Type": "application/soap+xml; charset=UTF-8",
                 SWITCH: "on" if calibrate else mode,
                 "X-Request-Id": f"{mode}-{uuid.uuid4().hex}"},
        timeout=30,
    )
    content = resp.content
    took = time.perf_counter() - started
    if resp.status_code != 200 or b"ResponseStatusType:Success" not in content:
        why = [x for x in served.gateway.server_log().splitlines() if "refused" in x][-1:]
        raise SystemExit(f"{kind}: HTTP {resp.status_code} {why}\n{content[:1500]!r}")
    if kind != "register" and content.count(b"<rim:ExtrinsicObject") < 5:
        raise SystemExit(f"{kind}: fewer than 5 documents found")
    return took


def measure(served: Served, kind: str, requests_: int, block: int, clients: int,
            calibrate: bool) -> tuple[list[tuple[list[float], list[float]]], dict[bool, float]]:
    """Each pair of neighbouring blocks' times (unaudited, audited), and requests per
    second in each mode over its blocks. ``calibrate``: both modes audited."""
    blocks: list[tuple[list[float], list[float]]] = []
    busy = {False: 0.0, True: 0.0}
    sessions = [demo.mtls_session(served.gateway) for _ in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        for n in range(max(2, requests_ // block)):
            times: dict[bool, list[float]] = {}
            for audited in (False, True) if n % 2 == 0 else (True, False):
                batch = [envelope(served, kind) for _ in range(block)]
                parts = [batch[i::clients] for i in range(clients)]
                started = time.perf_counter()
                done = pool.map(
                    lambda work, audited=audited: [
                        send(served, kind, data, audited, work[0], calibrate)
                        for data in work[1]],
                    [(sessions[i], parts[i]) for i in range(clients)])
                times[audited] = [t for part in done for t in part]
                busy[audited] += time.perf_counter() - started
            blocks.append((times[False], times[True]))
    for session in sessions:
        session.close()
    done_per_mode = len(blocks) * block
    return blocks, {mode: done_per_mode / seconds for mode, seconds in busy.items()}


def server_durations(served: Served, kind: str) -> dict[str, list[float]]:
    """Milliseconds from each request's arrival to its answer being ready, as the server
    logs them (``duration_ms`` of its "soap request" line), by mode ("on", "off")."""
    path, action, _ = ACTIONS[kind]
    durations: dict[str, list[float]] = {"on": [], "off": []}
    for line in served.gateway.server_log().splitlines():
        if '"soap request"' in line:
            entry = json.loads(line)
            if entry.get("path") == path and (entry.get("action") or "").startswith(action):
                durations[entry["request_id"].split("-")[0]].append(
                    float(entry["duration_ms"]))
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per mode and transaction")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1,
                        help="concurrent connections (requests of a block split among them)")
    parser.add_argument("--only", nargs="+", choices=list(ACTIONS), default=list(ACTIONS))
    parser.add_argument("--database-url", default=None, help="default: SQLite per community")
    parser.add_argument("--calibrate", action="store_true",
                        help="audit both modes: the added column is then the bench's own bias")
    args = parser.parse_args()
    env = server_env(args.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        served: Served | None = None
        try:
            served = start(Path(tmp), env)
            for _ in range(5):  # five submissions to find
                data = envelope(served, "register", registration(QUERIED))
                send(served, "register", data)
            for kind in args.only:  # warm-up, both modes
                for n in range(60):
                    send(served, kind, envelope(served, kind), n % 2 == 0)
            where = args.database_url.split("@")[-1] if args.database_url else "SQLite file"
            cfg = load_config(served.gateway.config, environ={}).server
            print(f"# {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()}"
                  f" CPUs, database {where}, {cfg.workers} workers x {cfg.threads} threads, "
                  f"{args.requests} requests per mode and transaction, blocks of "
                  f"{args.block}, {args.clients} client connection(s), load average "
                  f"{os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
                  + (", CALIBRATION: both modes audited" if args.calibrate else ""))
            print(f"{'':<12} {HEADER} {'req/s':>15} {'server ms':>17}")
            for kind in args.only:
                logged = {k: len(v) for k, v in server_durations(served, kind).items()}
                blocks, rates = measure(served, kind, args.requests, args.block, args.clients,
                                        args.calibrate)
                added = paired(blocks)
                inside = {mode: statistics.median(durations[logged[mode]:])
                          for mode, durations in server_durations(served, kind).items()}
                print(f"{kind:<12} {added.row()} "
                      f"{rates[False]:6.1f} -> {rates[True]:6.1f} "
                      f"{inside['off']:7.2f} -> {inside['on']:6.2f}")
        finally:
            if served is not None:
                served.session.close()
                demo.stop_server(served.gateway)


if __name__ == "__main__":
    main()
