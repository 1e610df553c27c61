"""What XUA costs per request: verifying an inbound assertion, signing an outbound one,
each next to its floor, in the same run.

    .venv/bin/python bench/xua.py [--requests 1000] [--rounds 3] [--database-url URL]

Messages are what our initiating gateway sends (``profiles.xua.build_security_header``:
Timestamp, holder-of-key assertion with the eHealth Exchange attributes signed
RSA-SHA256 with X509Data, message signature over the Timestamp), in an 8 KB ITI-38
envelope, signed by an RSA-2048 certificate from a test CA made on the spot; the TLS
client certificate is the same one (holder-of-key = TLS key). Each request gets its
own message, so the replay cache really inserts.

Rows (microseconds per request, wall and CPU, the best of the rounds' averages):

* parse: the hardened envelope parse (``parse_envelope``), which every request pays anyway.
* verify: ``verify_security_header`` on the parsed header, in-memory replay cache:
  structure checks, trust chain, signxml (assertion and Timestamp), claims.
* gate as served: bytes -> ``parse_envelope`` -> ``XuaGate`` with ``SqlReplayCache``
  (one INSERT ... ON CONFLICT per request; SQLite file by default).
* signxml, assertion only: a plain signxml verify of the same assertion (pinned
  certificate, no checks of ours), for scale: verify runs signxml twice.
* floor (verify): exclusive c14n of the same assertion plus one RSA-2048
  PKCS#1 v1.5 SHA-256 verify of its SignedInfo: what any verifier must do.
* sign, new assertion: ``build_security_header`` signing a fresh assertion and the
  Timestamp, then serializing the header.
* sign, cached assertion: the same with the assertion reused from ``AssertionCache``
  (only the Timestamp is signed per request).
* floor (sign): exclusive c14n of the assertion plus one RSA-2048 sign.
"""

from __future__ import annotations

import argparse
import base64
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from certs import authority  # noqa: E402
from gateway.dispatch import ROUTES  # noqa: E402
from gateway.ports import SystemClock  # noqa: E402
from gateway.security import XuaGate, XuaSettings  # noqa: E402
from gateway.security.refusals import NoRecord  # noqa: E402
from gateway.security.replay import ReplayToken, SqlReplayCache  # noqa: E402
from gateway.security.settings import TrustMaterial  # noqa: E402
from gateway.soap.envelope import parse_envelope  # noqa: E402
from gateway.store import migrate  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from profiles.errors import WSA_NS  # noqa: E402
from profiles.xua import (  # noqa: E402
    AssertionCache,
    Code,
    IssuePolicy,
    Principal,
    SigningCredentials,
    TrustAnchors,
    XuaPolicy,
    build_security_header,
    security_header,
    verify_security_header,
)
from profiles.xua.assertion import DS_NS, NHIN_PURPOSE, SAML_NS, SNOMED_CT  # noqa: E402

S12 = "http://www.w3.org/2003/05/soap-envelope"
QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
MAX = 1 << 20
XCA_QUERY = next(r for r in ROUTES if r.path == "/xca/query")
PRINCIPAL = Principal(
    subject_id="Karl S Skagerberg",
    organization="Example Community Hospital",
    organization_id="urn:oid:2.16.840.1.113883.3.7204.1",
    home_community_id="urn:oid:2.16.840.1.113883.3.7204",
    role=Code("307969004", SNOMED_CT, "SNOMED_CT", "Public Health"),
    purpose_of_use=Code("TREATMENT", NHIN_PURPOSE, "nhin-purpose", "Treatment"),
    name_id="CN=Karl S Skagerberg,O=Example Community Hospital,C=US",
    resource_id="500000000^^^&2.16.840.1.113883.3.7204.2&ISO",
    npi="1234567890",
)


def envelope(security: etree._Element) -> bytes:
    """An ITI-38 FindDocuments request around ``security`` (spliced as bytes)."""
    head = (
        f'<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA_NS}"><s:Header>'
        '<a:Action s:mustUnderstand="true">urn:ihe:iti:2007:CrossGatewayQuery</a:Action>'
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address>"
        '</a:ReplyTo><a:To s:mustUnderstand="true">https://gateway.example.org/xca/query</a:To>'
    )
    slots = "".join(
        f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{value}</rim:Value>'
        "</rim:ValueList></rim:Slot>"
        for name, value in (
            ("$XDSDocumentEntryPatientId", "'500000000^^^&amp;2.16.840.1.113883.3.7204.2&amp;ISO'"),
            ("$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"),
            ("$XDSDocumentEntryType", "('7edca82f-054d-47f2-a032-9b2a5b5186c1')"),
        )
    )
    body = (
        f'</s:Header><s:Body><query:AdhocQueryRequest xmlns:query="{QUERY_NS}" '
        f'xmlns:rim="{RIM_NS}"><query:ResponseOption returnType="LeafClass" '
        'returnComposedObjects="true"/>'
        f'<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">{slots}'
        "</rim:AdhocQuery></query:AdhocQueryRequest></s:Body></s:Envelope>"
    )
    return head.encode() + etree.tostring(security) + body.encode()


@dataclass
class Setup:
    credentials: SigningCredentials
    anchors: TrustAnchors
    tls_der: bytes
    messages: list[bytes]


def setup(count: int) -> Setup:
    ca = authority.create_authority("XUA bench CA")
    leaf = authority.issue(ca, "initiating gateway")
    credentials = SigningCredentials(key=leaf.private_key, certificate=leaf.certificate)
    policy = IssuePolicy()
    clock = SystemClock()
    messages = [
        envelope(
            build_security_header(
                PRINCIPAL, credentials=credentials, policy=policy, clock=clock, soap_ns=S12
            )
        )
        for _ in range(count)
    ]
    return Setup(
        credentials,
        TrustAnchors(roots=(ca.certificate,)),
        leaf.certificate.public_bytes(Encoding.DER),
        messages,
    )


class MemoryReplay:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@dataclass(frozen=True)
class Req:
    request_id: str
    peer_subject: str | None
    peer_certificate: bytes


def timed(fn: Callable[[int], object], n: int, rounds: int, before=None) -> Timing:
    """Best average wall and CPU seconds per call over ``rounds`` rounds of ``n`` calls.

    CPU time is this process's: on a shared machine it is the steadier figure for the
    pure computations; wall time also counts waiting for the database.
    """
    wall = cpu = float("inf")
    for _ in range(rounds):
        if before is not None:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i)
        wall = min(wall, (time.perf_counter() - start) / n)
        cpu = min(cpu, (time.process_time() - start_cpu) / n)
    return Timing(wall, cpu)


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def run(url: str, n: int, rounds: int) -> list[tuple[str, Timing, str]]:
    s = setup(n)
    clock = SystemClock()
    policy = XuaPolicy()
    cert = s.credentials.certificate
    parsed = [parse_envelope(m, max_bytes=MAX) for m in s.messages]
    headers = [security_header(e.headers, required=True) for e in parsed]
    replay = MemoryReplay()

    def fresh_memory() -> None:
        replay.seen.clear()

    def verify(i: int) -> object:
        return verify_security_header(
            headers[i],
            trust=s.anchors,
            policy=policy,
            clock=clock,
            replay_cache=replay,
            tls_client_cert=cert,
        )

    migrate.upgrade(url)
    db = Database(url)
    gate = XuaGate(
        settings=XuaSettings(),
        trust=TrustMaterial(s.anchors, ()),
        replay_cache=SqlReplayCache(db, clock=clock),
        clock=clock,
        record=NoRecord(),
    )
    req = Req("bench", None, s.tls_der)

    def empty_table() -> None:
        with db.engine.begin() as conn:
            conn.execute(sa.delete(ReplayToken.__table__))

    def served(i: int) -> object:
        principal = gate(XCA_QUERY, parse_envelope(s.messages[i], max_bytes=MAX), req)
        assert principal is not None
        return principal

    # The floor for verification: c14n of the assertion, and the one RSA verify.
    assertion = headers[0].find(f"{{{SAML_NS}}}Assertion")
    signature = assertion.find(f"{{{DS_NS}}}Signature")
    signed_info = etree.tostring(
        signature.find(f"{{{DS_NS}}}SignedInfo"), method="c14n", exclusive=True
    )
    value = base64.b64decode(signature.findtext(f"{{{DS_NS}}}SignatureValue"))
    public = cert.public_key()

    def floor_verify(_i: int) -> None:
        etree.tostring(assertion, method="c14n", exclusive=True)
        public.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())

    assertion_bytes = etree.tostring(assertion)
    plain = SignatureConfiguration(location="./", expect_references=1)

    def signxml_alone(_i: int) -> None:
        XMLVerifier().verify(
            assertion_bytes, x509_cert=cert, expect_config=plain, id_attribute="ID"
        )

    def floor_sign(_i: int) -> None:
        etree.tostring(assertion, method="c14n", exclusive=True)
        s.credentials.key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())

    fresh, reuse = IssuePolicy(), IssuePolicy(reuse_assertions=True)
    cache = AssertionCache()

    def sign(policy_: IssuePolicy, cache_: AssertionCache | None):
        def once(_i: int) -> bytes:
            header = build_security_header(
                PRINCIPAL,
                credentials=s.credentials,
                policy=policy_,
                clock=clock,
                cache=cache_,
                soap_ns=S12,
            )
            return etree.tostring(header)

        return once

    try:
        rows = [
            (
                "parse (hardened parse_envelope)",
                timed(lambda i: parse_envelope(s.messages[i], max_bytes=MAX), n, rounds),
                "-",
            ),
            ("verify (verify_security_header)", timed(verify, n, rounds, fresh_memory), "v"),
            (
                "gate as served (parse + verify + SQL replay)",
                timed(served, n, rounds, empty_table),
                "v",
            ),
            (
                "reference: plain signxml verify, assertion only",
                timed(signxml_alone, n, rounds),
                "v",
            ),
            ("floor: c14n + RSA-2048 verify", timed(floor_verify, n, rounds), "v"),
            ("sign, new assertion + Timestamp", timed(sign(fresh, None), n, rounds), "s"),
            ("sign, cached assertion, Timestamp only", timed(sign(reuse, cache), n, rounds), "s"),
            ("floor: c14n + RSA-2048 sign", timed(floor_sign, n, rounds), "s"),
        ]
    finally:
        db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="distinct messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        where = url.split("@")[-1] if "@" in url else url.split(":", 1)[0] + " file"
        started = datetime.now(UTC)
        rows = run(url, args.requests, args.rounds)
    size = len(setup(1).messages[0])
    print(
        f"# {platform.machine()}, Python {platform.python_version()}, replay cache on {where}, "
        f"{args.requests} requests x {args.rounds} rounds, envelope {size} bytes, "
        f"{started:%Y-%m-%d}"
    )
    floors = {group: t for name, t, group in rows if name.startswith("floor")}
    print(f"{'operation':<46} {'wall us':>9} {'CPU us':>9} {'req/s':>7} {'x floor':>8}")
    for name, t, group in rows:
        ratio = f"{t.cpu / floors[group].cpu:.1f}x" if group in floors else "-"
        print(f"{name:<46} {t.wall * 1e6:9.1f} {t.cpu * 1e6:9.1f} {1 / t.wall:7.0f} {ratio:>8}")
    print("# x floor: CPU time over the floor's CPU time; req/s: one core, from wall time")


if __name__ == "__main__":
    main()
