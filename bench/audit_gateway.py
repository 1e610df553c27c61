"""The gateway's own transactions in process, audited or not, for ``bench/audit.py``.

A community made by ``ihe-gateway init`` (its configuration, PKI and database, SQLite
or ``--database-url``), started as a server process starts it (``Runtime.start``:
the real registry and repository ports, the XUA gate with its SQL replay cache, the
auditor), and each request run as the HTTP view runs it (``handle_soap`` with the
route's real handler, then ``finish_audit``), with no HTTP or TLS around it. So the
denominator is each transaction's real cost, not a stand-in's:

* **register**: ITI-42 on ``/xds/registry`` from a local source (no XUA), a new
  submission set and document entry each time: the record joins the data commit;
* **query**: ITI-38 FindDocuments on ``/xca/query`` as a partner sends it (a
  freshly signed assertion, verified by the gate; 5 documents found): the record
  shares the commit of the assertion's replay token;
* **local-query**: ITI-18 FindDocuments on ``/xds/registry`` from a local consumer (mutual
  TLS alone, no XUA; 5 documents found): the record needs a commit of its own.

Unaudited, the request gets ``bench/serve_audit_switch.Unaudited`` (a sink that keeps
nothing), as the served bench's unaudited server does; the XUA gate then inserts the
replay token in a commit of its own. Both modes run in one process on one database.
"""

from __future__ import annotations

import io
import ssl
import time
import uuid
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from bench.audit_served import (
    ACTIONS,
    QUERIED,
    REGISTERED,
    Served,
    cli,
    envelope,
    registration,
)
from bench.audit_workload import PRINCIPAL
from bench.serve_audit_switch import Unaudited
from certs.store import load_certificate, load_private_key
from gateway import demo
from gateway.audit.hook import RequestFacts, finish_audit
from gateway.config import load_config
from gateway.dispatch import route_for
from gateway.runtime import Runtime
from gateway.soap.service import SoapRequest, handle_soap, iter_and_cleanup
from profiles.xua import SigningCredentials


def _subject(certificate: Path) -> str:
    """The client certificate's subject as the view reads it from gunicorn's socket."""
    decoded = ssl._ssl._test_decode_cert(str(certificate))  # type: ignore[attr-defined]
    return ",".join(f"{k}={v}" for rdn in decoded["subject"] for k, v in rdn)


class GatewayWorkload:
    """One initialised community, its runtime in this process, ``one`` request at a time."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        gw = demo.init_community(root / "bench", demo.free_port(), env=env)
        for patient in (QUERIED, REGISTERED):
            cli("patients", "add", patient, "--config", str(gw.config), "--given", "Ann",
                "--family", "Bench", "--birth", "19700101", "--gender", "F", env=env)
        self.config = load_config(gw.config, environ=env)
        self.runtime = Runtime.start(self.config)
        if self.runtime.audit_sender is not None:  # indexing and delivery: off the request
            self.runtime.audit_sender.stop()       # path, and not timed here
        self.database = self.runtime.database
        self.base_url = gw.base_url
        client = gw.cert("client.pem")
        self.peer_subject = _subject(client)
        certificate = load_certificate(client)
        self.peer_der = certificate.public_bytes(Encoding.DER)
        self.signer = Served("bench", gw, None, SigningCredentials(  # type: ignore[arg-type]
            key=load_private_key(gw.cert("client-key.pem")), certificate=certificate),
            replace(PRINCIPAL, resource_id=QUERIED))
        self.roles = frozenset(self.config.roles)
        for _ in range(5):  # the five submissions the queries find
            self.one("register", False, envelope(self.signer, "register",
                                                 registration(QUERIED)))

    def requests(self, kind: str, n: int) -> list[bytes]:
        """``n`` envelopes for ``kind``; signed ones each with a fresh assertion (signing
        is the partner's cost, not the transaction's)."""
        return [envelope(self.signer, kind) for _ in range(n)]

    def one(self, kind: str, audited: bool, data: bytes) -> tuple[float, float]:
        """(seconds to the answer ready, thread CPU seconds): the view's work without
        HTTP; audited, ready means the record is committed (no answer leaves before)."""
        path = ACTIONS[kind][0]
        route = route_for(path, self.roles)
        rt = self.runtime
        cpu, started = time.thread_time(), time.perf_counter()
        request_id = uuid.uuid4().hex
        audit = (rt.audit.request(RequestFacts(request_id, self.base_url + path, "127.0.0.1",
                                               self.peer_subject))
                 if audited else Unaudited())
        answer = handle_soap(
            route,
            SoapRequest(path, "application/soap+xml; charset=UTF-8", io.BytesIO(data),
                        len(data), None, request_id, self.peer_subject, self.peer_der),
            home_community_id=self.config.community.home_community_id, limits=rt.limits,
            ports=rt.ports, security=rt.security, audit=audit,
        )
        content = b"".join(iter_and_cleanup(answer))
        finish_audit(audit, answer)  # as the view does once the answer is sent
        took = time.perf_counter() - started, time.thread_time() - cpu
        if answer.status != 200 or b"ResponseStatusType:Success" not in content or (
                kind != "register" and content.count(b"ExtrinsicObject ") < 5):
            raise SystemExit(f"{kind}: unexpected answer {answer.status}: {content[:800]!r}")
        return took

    def close(self) -> None:
        self.database.dispose()
