"""What auditing adds to a query that carries XUA, in process, where the replay token goes.

    .venv/bin/python bench/audit_xua.py [--requests 2000] [--database-url URL]

``bench/audit.py``'s ITI-38-like query (NIST FindDocuments, 5 stored submissions)
through ``handle_soap`` with the real XUA gate (``XuaGate``: signature checks, the
SQL replay cache) and a freshly signed assertion per request (signed before the
request is timed; holder-of-key = the TLS client certificate passed in), in three
modes that alternate in blocks of 50:

* **unaudited**: the gate inserts the token in a commit of its own; no record.
* **audited, token at the gate**: as before this change (a route that does not
  list ITI-38 as read-only): the token's commit, then the record's own commit.
* **audited, token with the record**: the route lists ITI-38 as read-only, so the
  gate leaves the token to the request and the group commit inserts it with the
  record (``gateway/audit/deferred.py``): one commit.

Medians and p95 of the time to the answer being ready (the record durable), and
the thread's CPU time. No TLS or HTTP (``bench/audit_served.py`` has them).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.audit import BLOCK, ROUTES, Ports, p95, setup  # noqa: E402
from gateway.audit.hook import Auditor, RequestFacts  # noqa: E402
from gateway.dispatch import Route  # noqa: E402
from gateway.ports import SystemClock  # noqa: E402
from gateway.security.gate import XuaGate  # noqa: E402
from gateway.security.replay import SqlReplayCache  # noqa: E402
from gateway.security.settings import TrustMaterial, XuaSettings  # noqa: E402
from gateway.soap.service import Limits, SoapRequest, handle_soap, iter_and_cleanup  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from profiles.xua import (  # noqa: E402
    Code,
    IssuePolicy,
    Principal,
    SigningCredentials,
    TrustAnchors,
    build_security_header,
)
from profiles.xua.assertion import NHIN_PURPOSE, SNOMED_CT  # noqa: E402
from tests.profiles.xua.pki import build_pki  # noqa: E402

S12 = "http://www.w3.org/2003/05/soap-envelope"
HCID = "urn:oid:1.3.6.1.4.1.21367.2011.2.1"
MODES = ("unaudited", "audited, token at the gate", "audited, token with the record")

PRINCIPAL = Principal(
    subject_id="Karl S Skagerberg", organization="Example Community Hospital",
    organization_id="urn:oid:2.16.840.1.113883.3.7204.1",
    home_community_id="urn:oid:2.16.840.1.113883.3.7204",
    role=Code("307969004", SNOMED_CT, "SNOMED_CT", "Public Health"),
    purpose_of_use=Code("TREATMENT", NHIN_PURPOSE, "nhin-purpose", "Treatment"),
    name_id="CN=Karl S Skagerberg,O=Example Community Hospital,C=US",
    resource_id="PID-1", npi="1234567890",
)


def routes() -> dict[str, Route]:
    query = ROUTES["query"]
    reads = Route(query.path, query.role, query.wsdl, query.transactions, frozenset({"ITI-38"}))
    return {MODES[0]: reads, MODES[1]: query, MODES[2]: reads}


class Signer:
    """Envelopes with a fresh assertion each (``build_security_header``, as we send them)."""

    def __init__(self, template: bytes) -> None:
        self.pki = build_pki(datetime.now(UTC) - timedelta(minutes=1))
        self.credentials = SigningCredentials(key=self.pki.partner.key,
                                              certificate=self.pki.partner.cert)
        self.der = self.pki.partner.cert.public_bytes(Encoding.DER)
        self.template = etree.fromstring(template)

    def envelope(self) -> bytes:
        env = etree.fromstring(etree.tostring(self.template))
        header = env.find(f"{{{S12}}}Header")
        header.append(build_security_header(PRINCIPAL, credentials=self.credentials,
                                            policy=IssuePolicy(), clock=SystemClock(),
                                            soap_ns=S12))
        return etree.tostring(env)


def one(route: Route, data: bytes, signer: Signer, gate: XuaGate, database: Database,
        auditor: Auditor | None, limits: Limits) -> tuple[float, float]:
    """(seconds to the answer ready, thread CPU seconds) for one request."""
    cpu, started = time.thread_time(), time.perf_counter()
    request_id = uuid.uuid4().hex
    audit = (auditor.request(RequestFacts(request_id, "https://gw" + route.path, "10.1.2.3"))
             if auditor is not None else None)
    req = SoapRequest(route.path, "application/soap+xml", io.BytesIO(data), len(data), None,
                      request_id, signer.pki.partner.dn, signer.der)
    response = handle_soap(route, req, home_community_id=HCID, limits=limits,
                           ports=Ports(database), security=gate, audit=audit)
    body = b"".join(iter_and_cleanup(response))
    took = time.perf_counter() - started, time.thread_time() - cpu
    if response.status != 200 or b"ExtrinsicObject" not in body:
        raise SystemExit(f"unexpected answer {response.status}: {body[:500]!r}")
    return took


def run(url: str, requests: int) -> dict[str, list[tuple[float, float]]]:
    database, auditor, limits, data = setup(url)
    signer = Signer(data["query"])
    trust = TrustMaterial(TrustAnchors(roots=(signer.pki.ca.cert,)), ())
    gate = XuaGate(settings=XuaSettings(), trust=trust, replay_cache=SqlReplayCache(database),
                   clock=SystemClock())
    by_mode = routes()
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}

    def block(mode: str, n: int, keep: bool) -> None:
        envelopes = [signer.envelope() for _ in range(n)]  # signing is not timed
        audit = auditor if mode != MODES[0] else None
        for env in envelopes:
            took = one(by_mode[mode], env, signer, gate, database, audit, limits)
            if keep:
                times[mode].append(took)

    try:
        for mode in MODES:
            block(mode, 100, keep=False)  # warm up every path
        for n in range(max(1, requests // BLOCK)):
            for mode in MODES[n % 3:] + MODES[: n % 3]:  # who goes first rotates
                block(mode, BLOCK, keep=True)
    finally:
        database.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per mode")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        where = url.split("@")[-1] if "@" in url else url.split(":", 1)[0] + " file"
        before = os.getloadavg()[0]
        times = run(url, args.requests)
        print(f"# {platform.machine()}, Python {platform.python_version()}, database {where}, "
              f"{args.requests} requests per mode, load average {before:.1f} -> "
              f"{os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d}")
        print(f"{'query with XUA':<32} {'median ms':>9} {'p95 ms':>8} {'CPU ms':>7} "
              f"{'added (median)':>16}")
        plain = statistics.median(t for t, _ in times[MODES[0]])
        for mode in MODES:
            wall = [t for t, _ in times[mode]]
            cpu = statistics.median(c for _, c in times[mode])
            median = statistics.median(wall)
            added = "" if mode == MODES[0] else (
                f"{(median - plain) * 1e3:+.3f} ({(median - plain) / plain * 100:+.1f} %)")
            print(f"{mode:<32} {median * 1e3:9.3f} {p95(wall) * 1e3:8.3f} {cpu * 1e3:7.3f} "
                  f"{added:>16}")


if __name__ == "__main__":
    main()
