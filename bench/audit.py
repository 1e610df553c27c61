"""What auditing adds to a transaction in process: the same SOAP requests with and without.

    .venv/bin/python bench/audit.py [--requests 2000] [--database-url URL] [--breakdown]

Two registry-like transactions go through the real pipeline in process
(``handle_soap``: envelope, WS-Addressing, dispatch, parse, handle, serialize,
reply envelope; then ``finish_audit`` as the view runs it) against a real
database, with the conformance messages; the handlers note their audit facts
as the real ITI-42 and ITI-38 handlers do:

* **register** (ITI-42): IPF's full-metadata SubmitObjectsRequest (12 KB) read
  into 42 rows, two SELECTs, one data transaction. Audited, the port binds the
  request's audit to its session, so the record's recipe joins the data commit.
* **query** (ITI-38): NIST's FindDocuments, 5 stored submissions selected. It
  writes nothing, so, audited, the pipeline stages the record in a commit of
  its own once the answer is built and before it is returned (``answered``).

Modes alternate in blocks of 50 so drift falls on both; medians, p95 and the
thread's CPU time per request. No sender runs (indexing and delivery are off
the request path). ``--breakdown`` times the pieces of one record instead.
Default database: a SQLite file (WAL, synchronous=FULL, as the gateway runs it).
For served requests (TLS, HTTP, XUA) see ``bench/audit_served.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from lxml import etree

from gateway.audit.hook import Auditor, RequestFacts, finish_audit
from gateway.audit.queue import AuditQueue
from gateway.config import AuditDestination
from gateway.dispatch import ITI_38, ITI_42, Route
from gateway.soap.service import Limits, SoapRequest, handle_soap, iter_and_cleanup
from gateway.store import migrate
from gateway.store.db import Database
from profiles.atna.codec import audit_message_to_bytes
from profiles.atna.codes import AuditSourceType
from profiles.atna.events import Endpoint
from profiles.atna.facts import note
from profiles.atna.message import AuditSourceIdentification
from profiles.atna.recipe import rebuild
from profiles.atna.record import audit_record
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
    """(answer-ready, total, thread CPU) seconds for one request."""
    route = ROUTES[kind]
    cpu, started = time.thread_time(), time.perf_counter()
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
        ports=Ports(database),
        audit=audit,
    )
    b"".join(iter_and_cleanup(response))
    answered = time.perf_counter()
    if audit is not None:  # as the view does once the answer is sent
        finish_audit(audit, response)
    done = time.perf_counter()
    if response.status != 200 or response.outcome != "success":
        raise SystemExit(f"{kind}: unexpected answer {response.status} {response.outcome}")
    return answered - started, done - started, time.thread_time() - cpu


def setup(url: str) -> tuple[Database, Auditor, Limits, dict[str, bytes]]:
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
    stored = parse_register(etree.fromstring(data["register"]), None)["patient"]
    stored_xml = stored.replace("&", "&amp;").encode()
    if stored_xml not in data["register"]:
        raise SystemExit(f"the register message's patient {stored!r} is not where expected")
    seed = data["register"].replace(stored_xml, query_patient.replace("&", "&amp;").encode())
    for _ in range(5):
        one("register", seed, database, None, limits)
    return database, auditor, limits, data


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def run(url: str, requests: int) -> list[tuple]:
    """Per transaction: (kind, {audited: (ready, total, cpu) lists})."""
    database, auditor, limits, data = setup(url)
    results = []
    try:
        for kind in ("register", "query"):
            for _ in range(100):  # warm up both paths
                one(kind, data[kind], database, None, limits)
                one(kind, data[kind], database, auditor, limits)
            times: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
            for block in range(max(1, requests // BLOCK)):
                for audited in (block % 2 == 0, block % 2 == 1):
                    for _ in range(BLOCK):
                        times[audited].append(
                            one(kind, data[kind], database, auditor if audited else None, limits)
                        )
            results.append((kind, {a: list(zip(*t, strict=True)) for a, t in times.items()}))
    finally:
        database.dispose()
    return results


def breakdown(url: str, n: int = 1000) -> list[tuple[str, float]]:
    """Median microseconds of the pieces a record costs (what the profile showed)."""
    database, auditor, _, data = setup(url)
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
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--breakdown", action="store_true", help="time the pieces instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        where = url.split("@")[-1] if "@" in url else url.split(":", 1)[0] + " file"
        print(
            f"# {platform.machine()}, Python {platform.python_version()}, database {where}, "
            f"{args.requests} requests per mode, load average {os.getloadavg()[0]:.1f}, "
            f"{datetime.now(UTC):%Y-%m-%d}"
        )
        if args.breakdown:
            for what, us in breakdown(url):
                print(f"{us:9.1f} us  {what}")
            return
        print(f"{'':<20} {'plain':>8} {'audited':>8} {'added':>8} {'added':>7}")
        for kind, times in run(url, args.requests):
            for label, i, stat in (
                ("median", 1, statistics.median),
                ("p95", 1, p95),
                ("thread CPU", 2, statistics.median),
            ):
                plain, audited = stat(times[False][i]), stat(times[True][i])
                print(
                    f"{kind + ' ' + label:<20} {plain * 1e3:8.3f} {audited * 1e3:8.3f} "
                    f"{(audited - plain) * 1e3:+8.3f} {(audited - plain) / plain * 100:+6.1f}%"
                )


if __name__ == "__main__":
    main()
