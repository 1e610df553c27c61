"""Registry benchmark: a large XDS.b registry in PostgreSQL, and how fast it answers.

    .venv/bin/python bench/registry.py [--entries 1000000] [--patients 100000]
        [--queries 500] [--registrations 300] [--keep]

It creates a scratch database (``createdb -h 127.0.0.1 -U postgres regbench``), migrates
it, and loads ``--entries`` DocumentEntries spread evenly over ``--patients`` patients:
one submission per patient (a SubmissionSet, its DocumentEntries and the HasMember
Associations). The rows are produced by the registry's own code (``iti42.plan`` decides
entryUUIDs, status and versions, ``gateway.registry.store.to_row`` makes the ORM rows with
their XML and filter columns and child code/author rows) and written with COPY, table by
table, in batches; generation runs in worker processes. Then it measures, for random
patients and documents:

* FindDocuments (patient + Approved, LeafClass) through ``SqlRegistry.run_query`` and
  through the whole in-process SOAP pipeline (``create_app`` + Flask test client);
* GetDocuments by uniqueId, both ways;
* ITI-42 Register Document Set-b (one DocumentEntry each) through the pipeline, per second.

The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.registry import models as m  # noqa: E402
from gateway.registry.store import SqlRegistry, to_row  # noqa: E402
from profiles.xds import iti42  # noqa: E402
from profiles.xds.codes import AssociationType, SubmissionSetStatus  # noqa: E402
from profiles.xds.ebrim import submit_objects_request_to_xml  # noqa: E402
from profiles.xds.metadata import (  # noqa: E402
    Association,
    Author,
    Code,
    DocumentEntry,
    LocalizedString,
    Submission,
    SubmissionSet,
)
from profiles.xds.storedquery import QueryName, build  # noqa: E402

DB = "regbench"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
ROOT = "1.3.6.1.4.1.21367.2026.99"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
SNOMED, LOINC = "2.16.840.1.113883.6.96", "2.16.840.1.113883.6.1"
CLASSES = [("34133-9", "Summary of episode note"), ("11488-4", "Consult note"),
           ("18842-5", "Discharge summary"), ("34117-2", "History and physical")]
S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
TABLES = [m.SubmissionSetRow, m.SubmissionSetAuthor, m.DocumentEntryRow, m.DocumentEntryCode,
          m.DocumentEntryAuthor, m.AssociationRow]


def patient(p: int) -> str:
    return f"BENCH{p:07d}^^^&{ROOT}.1&ISO"


def doc_uid(p: int, i: int) -> str:
    return f"{ROOT}.2.{p}.{i}"


def submission(p: int, n: int, symbolic: bool = False) -> Submission:
    """Patient ``p``'s submission of ``n`` DocumentEntries (entryUUIDs given unless symbolic)."""
    rnd = random.Random(p)
    pid = patient(p)

    def ident(name: str) -> str:
        return name if symbolic else f"urn:uuid:{uuid.UUID(int=rnd.getrandbits(128), version=4)}"

    ss_id = ident("SubmissionSet01")
    docs, assocs = [], []
    for i in range(n):
        code, name = CLASSES[rnd.randrange(len(CLASSES))]
        day = f"20{rnd.randrange(10, 26):02d}{rnd.randrange(1, 13):02d}{rnd.randrange(1, 29):02d}"
        d = DocumentEntry(
            entry_uuid=ident(f"Document{i:02d}"), unique_id=doc_uid(p, i), patient_id=pid,
            mime_type="text/xml", title=LocalizedString(name),
            class_code=Code(code, LOINC, name), type_code=Code(code, LOINC, name),
            format_code=Code("urn:ihe:pcc:xphr:2007", "1.3.6.1.4.1.19376.1.2.3", "XPHR"),
            healthcare_facility_type_code=Code("225732001", SNOMED, "Community"),
            practice_setting_code=Code("408440000", SNOMED, "Public health"),
            confidentiality_codes=(Code("N", "2.16.840.1.113883.5.25", "normal"),),
            authors=(Author(person=f"^Author{rnd.randrange(500)}^Bench^^^",
                            institutions=("Bench Clinic",)),),
            creation_time=day + "120000", service_start_time=day, service_stop_time=day,
            hash=f"{rnd.getrandbits(160):040x}", size=rnd.randrange(1000, 100000),
            language_code="en-US", source_patient_id=f"L{p}^^^&{ROOT}.3&ISO",
            source_patient_info=(f"PID-3|L{p}^^^&{ROOT}.3&ISO", "PID-5|Doe^John^^^"),
            repository_unique_id=f"{ROOT}.4",
        )
        docs.append(d)
        assocs.append(Association(entry_uuid=ident(f"as{i:02d}"),
                                  type=AssociationType.HAS_MEMBER, source=ss_id,
                                  target=d.entry_uuid,
                                  submission_set_status=SubmissionSetStatus.ORIGINAL))
    ss = SubmissionSet(entry_uuid=ss_id, unique_id=f"{ROOT}.5.{p}.{rnd.getrandbits(32)}",
                       source_id=f"{ROOT}.6", patient_id=pid, submission_time="20251125120000",
                       content_type_code=Code("18748-4", LOINC, "Diagnostic imaging study"),
                       authors=(Author(person="^Bench^Loader^^^"),))
    return Submission(submission_set=ss, document_entries=tuple(docs), folders=(),
                      associations=tuple(assocs))


class _NoHistory:
    """The registry state ``iti42.plan`` consults for replacements: none here."""

    def folders_containing(self, document_uuid: str) -> list[str]:
        return []

    def addenda_and_transforms(self, document_uuid: str) -> list[str]:
        return []


def _columns(table) -> list[str]:
    return [c.key for c in table.__table__.columns]


def rows_for(p: int, n: int, now: datetime) -> dict[str, list[tuple]]:
    """COPY rows of patient ``p``'s submission, with ids derived from ``p`` (no coordination)."""
    registration = iti42.plan(submission(p, n), _NoHistory(), "20251125120000")
    out: dict[str, list[tuple]] = {t.__tablename__: [] for t in TABLES}
    ids = {"ss": p + 1, "doc": p * n + 1, "assoc": p * n + 1}
    for obj in registration.submission.registry_objects():
        row = to_row(obj)
        kind = {m.SubmissionSetRow: "ss", m.DocumentEntryRow: "doc",
                m.AssociationRow: "assoc"}[type(row)]
        row.id, row.registered_at = ids[kind], now
        ids[kind] += 1
        out[row.__tablename__].append(tuple(getattr(row, c) for c in _columns(type(row))))
        for child in (*getattr(row, "codes", ()), *getattr(row, "authors", ()),
                      *getattr(row, "reference_ids", ())):
            owner = "set_id" if isinstance(child, m.SubmissionSetAuthor) else "entry_id"
            setattr(child, owner, row.id)
            out[child.__tablename__].append(
                tuple(getattr(child, c) for c in _columns(type(child))))
    return out


def _batch(args: tuple[int, int, int]) -> dict[str, list[tuple]]:
    start, stop, n = args
    now = datetime.now(UTC)
    merged: dict[str, list[tuple]] = {t.__tablename__: [] for t in TABLES}
    for p in range(start, stop):
        for name, rows in rows_for(p, n, now).items():
            merged[name] += rows
    return merged


def load(engine: sa.Engine, patients: int, per_patient: int, workers: int) -> float:
    t0 = time.perf_counter()
    step = 500
    batches = [(s, min(s + step, patients), per_patient) for s in range(0, patients, step)]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done, merged in enumerate(pool.imap(_batch, batches), 1):
                for table in TABLES:
                    cols = _columns(table)
                    with cur.copy(f"COPY {table.__tablename__} ({', '.join(cols)}) FROM STDIN"
                                  ) as copy:
                        for row in merged[table.__tablename__]:
                            copy.write_row(row)
                raw.commit()
                if done % 20 == 0 or done == len(batches):
                    rate = done * step * per_patient / (time.perf_counter() - t0)
                    print(f"  {min(done * step, patients)} patients loaded, "
                          f"{rate:,.0f} entries/s", flush=True)
        for table in (m.SubmissionSetRow, m.DocumentEntryRow, m.AssociationRow):
            name = table.__tablename__
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))")
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    p50 = statistics.median(s)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {s[-1] * 1000:.2f} ms"


def timed(fn, args: list) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return out


def envelope(action: str, body: bytes) -> bytes:
    return (f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA}'><e:Header>"
            f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID></e:Header><e:Body>"
            ).encode() + body + b"</e:Body></e:Envelope>"


def adhoc(query_id: str, slots: dict[str, str]) -> bytes:
    xml = "".join(f"<rim:Slot name='{k}'><rim:ValueList><rim:Value>{v}</rim:Value>"
                  "</rim:ValueList></rim:Slot>" for k, v in slots.items())
    return (
        "<query:AdhocQueryRequest xmlns:query='urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0' "
        "xmlns:rim='urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0'>"
        "<query:ResponseOption returnComposedObjects='true' returnType='LeafClass'/>"
        f"<rim:AdhocQuery id='{query_id}'>{xml}</rim:AdhocQuery></query:AdhocQueryRequest>"
    ).encode().replace(b"&", b"&amp;")


def measure(args, per_patient: int) -> None:
    from gateway.app import create_app
    from gateway.config import config_from_dict
    from gateway.store.db import Database
    from profiles.pix.ports import PatientRecord, parse_cx

    rnd = random.Random(7)
    db = Database(URL)
    registry = SqlRegistry(db)
    picks = [rnd.randrange(args.patients) for _ in range(args.queries)]

    def find(p: int) -> None:
        q = build(QueryName.FIND_DOCUMENTS, {"$XDSDocumentEntryPatientId": f"'{patient(p)}'",
                                              "$XDSDocumentEntryStatus": (APPROVED,)})
        assert len(registry.run_query(q)) == per_patient

    def get(p: int) -> None:
        q = build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": (doc_uid(p, 0),)})
        assert len(registry.run_query(q)) == 1

    for fn in (find, get):
        timed(fn, picks[:20])  # warm-up
    print(f"FindDocuments, run_query ({per_patient} LeafClass entries): "
          f"{percentiles(timed(find, picks))}")
    print(f"GetDocuments by uniqueId, run_query: {percentiles(timed(get, picks))}")

    tmp = Path(tempfile.mkdtemp(prefix="regbench-"))
    cfg = config_from_dict({
        "community": {"home_community_id": "1.3.6.1.4.1.21367.2011.2.1", "name": "Bench"},
        "storage": {"data_dir": str(tmp / "data")}, "database": {"url": URL},
    }, base=tmp, environ={})
    app = create_app(cfg)
    client = app.test_client()
    query_action = "urn:ihe:iti:2007:RegistryStoredQuery"

    def soap(action: str, body: bytes) -> bytes:
        resp = client.post("/xds/registry", data=envelope(action, body),
                           content_type="application/soap+xml")
        data = resp.get_data()
        resp.close()
        assert resp.status_code == 200 and b"Failure" not in data, data[:600]
        return data

    def soap_find(p: int) -> None:
        data = soap(query_action, adhoc("urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", {
            "$XDSDocumentEntryPatientId": f"'{patient(p)}'",
            "$XDSDocumentEntryStatus": f"('{APPROVED}')"}))
        assert data.count(b"ExtrinsicObject ") == per_patient

    def soap_get(p: int) -> None:
        data = soap(query_action, adhoc("urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4", {
            "$XDSDocumentEntryUniqueId": f"('{doc_uid(p, 0)}')"}))
        assert data.count(b"ExtrinsicObject ") == 1

    for fn in (soap_find, soap_get):
        timed(fn, picks[:20])
    print(f"FindDocuments, SOAP pipeline: {percentiles(timed(soap_find, picks))}")
    print(f"GetDocuments by uniqueId, SOAP pipeline: {percentiles(timed(soap_get, picks))}")

    rt = app.extensions["gateway"]
    new = list(range(args.patients, args.patients + args.registrations))
    for p in new:
        rt.ports.patients.add(PatientRecord(parse_cx(patient(p))))
    bodies = [submit_objects_request_to_xml(replace(submission(p, 1, symbolic=True)))
              for p in new]
    from lxml import etree

    payloads = [etree.tostring(b) for b in bodies]
    action = "urn:ihe:iti:2007:RegisterDocumentSet-b"
    t = time.perf_counter()
    lat = timed(lambda body: soap(action, body), payloads)
    elapsed = time.perf_counter() - t
    print(f"ITI-42 through the pipeline: {len(payloads) / elapsed:.1f} registrations/s "
          f"(1 DocumentEntry each, one client thread; {percentiles(lat)})")
    rt.database.dispose()
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--registrations", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", action="store_true", help="do not drop the database")
    args = ap.parse_args()
    per_patient = args.entries // args.patients
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", DB],
                   check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
    try:
        from gateway.store import migrate

        migrate.upgrade(URL)
        engine = sa.create_engine(URL)
        with engine.connect() as conn:
            print("PostgreSQL", conn.execute(sa.text("SHOW server_version")).scalar())
        print(f"loading {per_patient * args.patients:,} DocumentEntries for "
              f"{args.patients:,} patients ({per_patient} each) ...", flush=True)
        seconds = load(engine, args.patients, per_patient, args.workers)
        with engine.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_size_pretty(pg_database_size(:d))"),
                                {"d": DB}).scalar()
            counts = {t.__tablename__: conn.execute(
                sa.text(f"SELECT count(*) FROM {t.__tablename__}")).scalar() for t in TABLES}
        engine.dispose()
        print(f"loaded in {seconds:.0f} s ({per_patient * args.patients / seconds:,.0f} "
              f"entries/s); database {size}; rows {counts}")
        measure(args, per_patient)
    finally:
        if not args.keep:
            subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", DB],
                           check=True)


if __name__ == "__main__":
    main()
