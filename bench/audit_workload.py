"""The in-process workload of the audit benches: registry-like ITI-42 and ITI-38 through
the real SOAP pipeline against a real database, unaudited or audited as the gateway runs.

``handle_soap`` (envelope, WS-Addressing, dispatch, the XUA gate when given, parse,
handle, serialise, reply envelope), then ``finish_audit`` as the view runs it, with the
conformance messages; the handlers note their audit facts as the real ITI-42 and
ITI-38 handlers do:

* **register** (ITI-42): IPF's full-metadata SubmitObjectsRequest (12 KB) read into
  42 rows, two SELECTs, one data transaction. Audited, the record's recipe joins the
  data commit (the port binds the request's audit to its session).
* **query** (ITI-38): NIST's FindDocuments, 5 stored submissions selected; it writes
  nothing. With XUA (``Signer``/``xua_gate``: a freshly signed assertion per request,
  verified by the real ``XuaGate`` with the SQL replay cache) the route lists ITI-38 as
  read-only, as the gateway's does: unaudited, the gate inserts the token in a commit
  of its own; audited, the token and the record share one commit. Without XUA (a local
  consumer over mutual TLS alone) the audited query needs a commit of its own.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.audit.hook import Auditor, RequestFacts, finish_audit
from gateway.audit.queue import AuditQueue
from gateway.config import AuditDestination
from gateway.dispatch import ITI_38, ITI_42, Route
from gateway.ports import SystemClock
from gateway.security.gate import XuaGate
from gateway.security.replay import SqlReplayCache
from gateway.security.settings import TrustMaterial, XuaSettings
from gateway.soap.service import Limits, SoapRequest, handle_soap, iter_and_cleanup
from gateway.store import migrate
from gateway.store.db import Database
from profiles.atna.codes import AuditSourceType
from profiles.atna.events import Endpoint
from profiles.atna.facts import note
from profiles.atna.message import AuditSourceIdentification
from profiles.transaction import Transaction
from profiles.xua import (
    Code,
    IssuePolicy,
    Principal,
    SigningCredentials,
    TrustAnchors,
    build_security_header,
)
from profiles.xua.assertion import NHIN_PURPOSE, SNOMED_CT
from tests.profiles.xua.pki import build_pki

REPO = Path(__file__).resolve().parents[1]

MESSAGES = REPO.parent / "shared" / "conformance" / "messages"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
OBJECTS = ("ExtrinsicObject", "RegistryPackage", "Association", "Classification")

bench_meta = sa.MetaData()
registry = sa.Table(
    "bench_registry_objects",
    bench_meta,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("submission", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("parent", sa.String(128)),
    sa.Column("patient", sa.String(256), index=True),
    sa.Column("name", sa.String(256)),
    sa.Column("value", sa.Text),
)


@dataclass
class Ports:
    database: Database


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


@contextmanager
def _bound(audit, session) -> Iterator[None]:
    """The request's audit joins the data session, as the gateway's ports do."""
    if audit is None:
        yield
        return
    with audit.bind(session):
        yield


# -- ITI-42-like -------------------------------------------------------------------------


def parse_register(body: etree._Element, ctx) -> dict:
    """Every registry object, slot and external identifier as a row."""
    submission = uuid.uuid4().hex
    rows, patient, ss_unique_id = [], None, None
    for el in body.iter(f"{{{RIM}}}*"):
        kind = _local(el)
        if kind in OBJECTS:
            rows.append(
                (el.get("id"), kind, el.get("classifiedObject"), None, el.get("objectType"))
            )
        elif kind == "ExternalIdentifier":
            scheme = "".join((el.get("identificationScheme") or "").split())
            if scheme == SS_PATIENT_ID:
                patient = el.get("value")
            elif scheme == SS_UNIQUE_ID:
                ss_unique_id = el.get("value")
            rows.append((el.get("id"), kind, el.get("registryObject"), scheme, el.get("value")))
        elif kind == "Slot":
            values = [v.text or "" for v in el.iter(f"{{{RIM}}}Value")]
            rows.append((None, kind, el.getparent().get("id"), el.get("name"), "|".join(values)))
    note(ctx, submission_set_id=ss_unique_id, patient_ids=[patient or ""])  # as ITI-42 does
    return {"submission": submission, "rows": rows, "patient": patient, "uid": ss_unique_id}


def handle_register(request: dict, ctx) -> str:
    ports: Ports = ctx.ports
    with ports.database.session() as session, _bound(ctx.audit, session):
        conn = session.connection()
        conn.execute(
            sa.select(registry.c.pk).where(registry.c.patient == request["patient"]).limit(1)
        )
        conn.execute(sa.select(registry.c.pk).where(registry.c.value == request["uid"]).limit(1))
        conn.execute(
            registry.insert(),
            [
                {
                    "submission": request["submission"],
                    "object_id": oid or "-",
                    "kind": kind,
                    "parent": parent,
                    "patient": request["patient"],
                    "name": name,
                    "value": value,
                }
                for oid, kind, parent, name, value in request["rows"]
            ],
        )
    return SUCCESS


def serialize_register(status: str) -> etree._Element:
    return etree.Element(f"{{{RS}}}RegistryResponse", status=status)


# -- ITI-38-like -------------------------------------------------------------------------


def parse_query(body: etree._Element, ctx) -> dict:
    query = body.find(f"{{{RIM}}}AdhocQuery")
    patient = None
    for slot in query.iter(f"{{{RIM}}}Slot"):
        if slot.get("name") == "$XDSDocumentEntryPatientId":
            patient = slot.findtext(f".//{{{RIM}}}Value").strip("'")
    raw = etree.tostring(body)
    note(ctx, query=raw, query_id=query.get("id"), patient_ids=[patient],  # as ITI-38 does
         home_community_id="urn:oid:1.3.6.1.4.1.21367.2011.2.1")
    return {"raw": raw, "id": query.get("id"), "patient": patient}


def handle_query(request: dict, ctx) -> list:
    ports: Ports = ctx.ports
    with ports.database.session() as session:
        rows = session.execute(
            sa.select(
                registry.c.object_id,
                registry.c.kind,
                registry.c.parent,
                registry.c.name,
                registry.c.value,
            )
            .where(registry.c.patient == request["patient"])
            .order_by(registry.c.pk)
        ).all()
    return rows


def serialize_query(rows: list) -> etree._Element:
    response = etree.Element(f"{{{QUERY}}}AdhocQueryResponse", status=SUCCESS)
    objects = etree.SubElement(response, f"{{{RIM}}}RegistryObjectList")
    documents: dict[str, etree._Element] = {}
    for object_id, kind, parent, name, value in rows:
        if kind == "ExtrinsicObject":
            documents[object_id] = etree.SubElement(
                objects,
                f"{{{RIM}}}ExtrinsicObject",
                id=f"urn:uuid:{uuid.uuid4()}",
                objectType=value,
            )
        elif kind == "Slot" and parent in documents:
            slot = etree.SubElement(documents[parent], f"{{{RIM}}}Slot", name=name)
            values = etree.SubElement(slot, f"{{{RIM}}}ValueList")
            for v in value.split("|"):
                etree.SubElement(values, f"{{{RIM}}}Value").text = v
    return response


def _txn(base: Transaction, parse, handle, serialize) -> Transaction:
    return Transaction(
        base.id,
        base.name,
        base.action,
        base.reply_action,
        base.error_form,
        parse,
        handle,
        serialize,
    )


QUERY_TXN = _txn(ITI_38, parse_query, handle_query, serialize_query)
ROUTES = {
    "register": Route(
        "/xds/registry",
        "registry",
        "xds-registry.wsdl",
        (_txn(ITI_42, parse_register, handle_register, serialize_register),),
    ),
    # As the gateway's dispatch table lists ITI-38: read-only, its XUA token may wait
    # for the record's commit.
    "query": Route("/xca/query", "responding_gateway", "xca-query.wsdl", (QUERY_TXN,),
                   frozenset({"ITI-38"})),
}


def envelopes() -> dict[str, bytes]:
    submit = (MESSAGES / "ipf" / "xds-iti42-SubmitObjectsRequest_full-metadata.xml").read_bytes()
    submit = submit.split(b"?>", 1)[-1] if submit.startswith(b"<?xml") else submit
    register = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header>'
        b'<a:Action s:mustUnderstand="1">' + ITI_42.action.encode() + b"</a:Action>"
        b"<a:MessageID>urn:uuid:0b0c6c4e-4d3c-4b8e-9a53-5c1d1e2f3a4b</a:MessageID>"
        b"</s:Header><s:Body>" + submit + b"</s:Body></s:Envelope>"
    )
    query = MESSAGES / "nist-toolkit" / "xca-iti38-CrossGatewayQuery-request_soap12.xml"
    return {"register": register, "query": query.read_bytes()}


HCID = "urn:oid:1.3.6.1.4.1.21367.2011.2.1"
S12 = "http://www.w3.org/2003/05/soap-envelope"
PRINCIPAL = Principal(
    subject_id="Karl S Skagerberg", organization="Example Community Hospital",
    organization_id="urn:oid:2.16.840.1.113883.3.7204.1",
    home_community_id="urn:oid:2.16.840.1.113883.3.7204",
    role=Code("307969004", SNOMED_CT, "SNOMED_CT", "Public Health"),
    purpose_of_use=Code("TREATMENT", NHIN_PURPOSE, "nhin-purpose", "Treatment"),
    name_id="CN=Karl S Skagerberg,O=Example Community Hospital,C=US",
    resource_id="PID-1", npi="1234567890",
)


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


class Workload:
    """One database with the five submissions the query finds, an auditor as the gateway
    builds it, and ``one`` request at a time."""

    def __init__(self, url: str) -> None:
        migrate.upgrade(url)
        self.database = Database(url)
        bench_meta.drop_all(self.database.engine)
        bench_meta.create_all(self.database.engine)
        source = AuditSourceIdentification(HCID, type_codes=(AuditSourceType.APPLICATION_SERVER,))
        queue = AuditQueue(self.database, [AuditDestination("tls", "audit.example.org", 6514)])
        self.auditor = Auditor(queue, source,
                               node=Endpoint("ihe-gateway", host="gateway.example.org"))
        self.limits = Limits(max_message_bytes=10 * 2**20, max_attachment_bytes=10 * 2**20)
        self.data = envelopes()
        self.signer = Signer(self.data["query"])
        trust = TrustMaterial(TrustAnchors(roots=(self.signer.pki.ca.cert,)), ())
        self.gate = XuaGate(settings=XuaSettings(), trust=trust,
                            replay_cache=SqlReplayCache(self.database), clock=SystemClock())
        # Five stored submissions for the patient the query asks about.
        query_patient = parse_query(
            etree.fromstring(self.data["query"]).find(f".//{{{QUERY}}}AdhocQueryRequest"), None
        )["patient"]
        stored = parse_register(etree.fromstring(self.data["register"]), None)["patient"]
        stored_xml = stored.replace("&", "&amp;").encode()
        if stored_xml not in self.data["register"]:
            raise SystemExit(f"the register message's patient {stored!r} is not where expected")
        seed = self.data["register"].replace(
            stored_xml, query_patient.replace("&", "&amp;").encode())
        for _ in range(5):
            self.one("register", False, seed)

    def requests(self, kind: str, n: int) -> list[bytes]:
        """``n`` request bodies for ``kind`` ("register", "query", "query+xua"); the XUA
        ones each signed afresh (signing is not part of the request's cost)."""
        if kind == "query+xua":
            return [self.signer.envelope() for _ in range(n)]
        return [self.data[kind]] * n

    def one(self, kind: str, audited: bool, data: bytes) -> tuple[float, float]:
        """(seconds to the answer ready, thread CPU seconds) for one request; with an
        audit, ready means its record is durable, as the gateway sends nothing before."""
        xua = kind == "query+xua"
        route = ROUTES["query" if xua else kind]
        cpu, started = time.thread_time(), time.perf_counter()
        request_id = uuid.uuid4().hex
        audit = (self.auditor.request(RequestFacts(request_id, "https://gw" + route.path,
                                                   "10.1.2.3"))
                 if audited else None)
        req = SoapRequest(route.path, "application/soap+xml", io.BytesIO(data), len(data),
                          None, request_id, self.signer.pki.partner.dn if xua else None,
                          self.signer.der if xua else None)
        response = handle_soap(route, req, home_community_id=HCID, limits=self.limits,
                               ports=Ports(self.database), security=self.gate if xua else None,
                               audit=audit)
        answer = b"".join(iter_and_cleanup(response))
        if audit is not None:  # as the view does once the answer is sent (a no-op here)
            finish_audit(audit, response)
        took = time.perf_counter() - started, time.thread_time() - cpu
        if response.status != 200 or response.outcome != "success" or (
                kind != "register" and b"ExtrinsicObject" not in answer):
            raise SystemExit(f"{kind}: unexpected answer {response.status}: {answer[:500]!r}")
        return took
