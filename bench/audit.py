"""What auditing adds to a transaction: the same SOAP requests with and without it.

    .venv/bin/python bench/audit.py [--requests 2000] [--database-url URL]

Two registry-like transactions go through the real pipeline in-process
(``gateway.soap.service.handle_soap``: envelope, WS-Addressing, dispatch,
parse, handle, serialize, reply envelope) against a real database, using the
conformance messages (``../shared/conformance/messages``):

* **register** (ITI-42): IPF's full-metadata SubmitObjectsRequest (12 KB). The
  handler reads every registry object, slot, classification and external
  identifier into rows (42), checks the patient and the submission set
  uniqueId with two SELECTs and writes the rows in one transaction. Audited,
  it also builds the Import message and enqueues it *in the same session*
  (``RequestAudit.bind``): the record rides on the data's commit.
* **query** (ITI-38): NIST's CrossGatewayQuery (FindDocuments). The handler
  selects the patient's documents (5 stored submissions) and answers an
  AdhocQueryResponse. It writes nothing, so, audited, ``finish`` stores the
  Query message in its own short transaction after the answer is built; the
  table shows both the answer-ready time and the total.

Modes alternate in blocks of 50 requests so drift (caches, WAL checkpoints)
falls on both; figures are medians per request. The background sender is not
running (delivery is off the request path; see the delivery tests). Default
database: a SQLite file in a temporary folder (WAL, synchronous=FULL, as the
gateway runs it).
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from lxml import etree

from gateway.audit.hook import Auditor, RequestAudit, RequestFacts
from gateway.audit.queue import AuditQueue
from gateway.config import AuditDestination
from gateway.dispatch import ITI_38, ITI_42, Route
from gateway.soap.service import Limits, SoapRequest, handle_soap, iter_and_cleanup
from gateway.store import migrate
from gateway.store.db import Database
from profiles.atna.codes import AuditSourceType, Side
from profiles.atna.events import Endpoint, query_event, submission_event
from profiles.atna.message import AuditSourceIdentification
from profiles.transaction import Transaction

REPO = Path(__file__).resolve().parents[1]

MESSAGES = REPO.parent / "shared" / "conformance" / "messages"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
OBJECTS = ("ExtrinsicObject", "RegistryPackage", "Association", "Classification")
BLOCK = 50

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
    audit: RequestAudit | None


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _ends() -> tuple[Endpoint, Endpoint]:
    return (
        Endpoint("http://www.w3.org/2005/08/addressing/anonymous", host="10.1.2.3"),
        Endpoint("https://gateway.example.org/xds/registry", host="gateway.example.org"),
    )


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
    return {"submission": submission, "rows": rows, "patient": patient, "uid": ss_unique_id}


def handle_register(request: dict, ctx) -> str:
    ports: Ports = ctx.ports
    with ports.database.session() as session:
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
        if ports.audit is not None:
            with ports.audit.bind(session):
                initiator, responder = _ends()
                ports.audit.record(
                    submission_event(
                        "ITI-42",
                        Side.RESPONDER,
                        ports.audit.auditor.occasion(),
                        initiator=initiator,
                        responder=responder,
                        submission_set_id=request["uid"],
                        patient_id=request["patient"],
                    )
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
    return {"raw": etree.tostring(body), "id": query.get("id"), "patient": patient}


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
    if ports.audit is not None:
        initiator, responder = _ends()
        ports.audit.record(
            query_event(
                "ITI-38",
                Side.RESPONDER,
                ports.audit.auditor.occasion(),
                initiator=initiator,
                responder=responder,
                query=request["raw"],
                query_id=request["id"],
                patient_ids=[request["patient"]],
                home_community_id="urn:oid:1.3.6.1.4.1.21367.2011.2.1",
            )
        )
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


ROUTES = {
    "register": Route(
        "/xds/registry",
        "registry",
        "xds-registry.wsdl",
        (_txn(ITI_42, parse_register, handle_register, serialize_register),),
    ),
    "query": Route(
        "/xca/query",
        "responding_gateway",
        "xca-query.wsdl",
        (_txn(ITI_38, parse_query, handle_query, serialize_query),),
    ),
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


def one(kind: str, data: bytes, database: Database, auditor: Auditor | None, limits: Limits):
    """(answer-ready seconds, total seconds) for one request."""
    route = ROUTES[kind]
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    audit = None
    if auditor is not None:
        audit = auditor.request(RequestFacts(request_id, "https://gw" + route.path, "10.1.2.3"))
    response = handle_soap(
        route,
        SoapRequest(
            route.path, "application/soap+xml", io.BytesIO(data), len(data), None, request_id
        ),
        home_community_id="urn:oid:1.3.6.1.4.1.21367.2011.2.1",
        limits=limits,
        ports=Ports(database, audit),
    )
    b"".join(iter_and_cleanup(response))
    answered = time.perf_counter()
    if audit is not None:
        audit.finish(transaction=response.transaction, outcome=response.outcome)
    done = time.perf_counter()
    if response.status != 200 or response.outcome != "success":
        raise SystemExit(f"{kind}: unexpected answer {response.status} {response.outcome}")
    return answered - started, done - started


def run(url: str, requests: int) -> list[tuple]:
    migrate.upgrade(url)
    database = Database(url)
    bench_meta.drop_all(database.engine)
    bench_meta.create_all(database.engine)
    source = AuditSourceIdentification(
        "urn:oid:1.3.6.1.4.1.21367.2011.2.1", type_codes=(AuditSourceType.APPLICATION_SERVER,)
    )
    queue = AuditQueue(database, [AuditDestination("tls", "audit.example.org", 6514)])
    auditor = Auditor(queue, source, node=Endpoint("ihe-gateway", host="gateway.example.org"))
    limits = Limits(max_message_bytes=10 * 1024 * 1024, max_attachment_bytes=10 * 1024 * 1024)
    data = envelopes()
    # Five stored submissions for the patient the query asks about.
    query_patient = parse_query(
        etree.fromstring(data["query"]).find(f".//{{{QUERY}}}AdhocQueryRequest"), None
    )["patient"]
    seed = data["register"].replace(
        b"ST-1000^^^&amp;1.3.6.1.4.1.21367.2003.3.9&amp;ISO",
        query_patient.replace("&", "&amp;").encode(),
    )
    for _ in range(5):
        one("register", seed, database, None, limits)
    results = []
    try:
        for kind in ("register", "query"):
            for _ in range(100):  # warm up both paths
                one(kind, data[kind], database, None, limits)
                one(kind, data[kind], database, auditor, limits)
            times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for block in range(max(1, requests // BLOCK)):
                for audited in (block % 2 == 0, block % 2 == 1):
                    for _ in range(BLOCK):
                        times[audited].append(
                            one(kind, data[kind], database, auditor if audited else None, limits)
                        )
            plain = statistics.median(t for _, t in times[False])
            answered = statistics.median(a for a, _ in times[True])
            total = statistics.median(t for _, t in times[True])
            results.append((kind, plain, answered, total))
    finally:
        database.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per mode and transaction")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        where = url.split("@")[-1] if "@" in url else url.split(":", 1)[0] + " file"
        print(
            f"# {platform.machine()}, Python {platform.python_version()}, database {where}, "
            f"{args.requests} requests per mode, {datetime.now(UTC):%Y-%m-%d}"
        )
        print(
            f"{'transaction':<11} {'plain':>8} {'audited':>8} {'added':>7} {'added':>7}"
            f" | {'answer ready':>12} {'added':>7}"
        )
        print(f"{'':<11} {'ms':>8} {'ms':>8} {'ms':>7} {'%':>7} | {'ms':>12} {'%':>7}")
        for kind, plain, answered, total in run(url, args.requests):
            print(
                f"{kind:<11} {plain * 1e3:8.3f} {total * 1e3:8.3f} {(total - plain) * 1e3:7.3f} "
                f"{(total - plain) / plain * 100:6.1f}% | {answered * 1e3:12.3f} "
                f"{(answered - plain) / plain * 100:6.1f}%"
            )


if __name__ == "__main__":
    main()
