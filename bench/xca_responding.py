"""CPU cost of one ITI-38 Cross Gateway Query at the responding gateway, at 1, 10 and 100
matching documents, next to its floor, in the same run.

    .venv/bin/python bench/xca_responding.py [--requests 300] [--sizes 1,10,100]
        [--database-url URL]

A community is built in process (``create_app`` over a temporary SQLite file, or
``--database-url``), with three patients holding 1, 10 and 100 approved documents
registered through ITI-41's own code path. Each request is the bytes of an ITI-38
FindDocuments (LeafClass) SOAP 1.2 envelope, answered by the real pipeline the view
calls, ``gateway.soap.service.handle_soap`` on ``/xca/query``: envelope parse,
WS-Addressing, dispatch, the patient index lookup, the registry query, the response
model serialised to bytes. XUA is OFF (``security=None``): its cost is measured by
``bench/xua.py`` (about 0.7 ms of verify per request), so it is not counted twice here.

Rows, per request, the median over ``--requests`` requests after warm-up, the three
taking turns in blocks of 10 (``time.thread_time``: CPU of the calling thread, which
runs the whole pipeline):

* handle_soap + audit: as served (``rt.audit.request`` ... ``finish_audit``: the ATNA
  record written to the database per request);
* handle_soap: the same without the audit record;
* floor: lxml parsing the same request envelope plus serialising the same response
  envelope (parsed beforehand) to bytes: what any responder must do with these bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.app import create_app  # noqa: E402
from gateway.audit.hook import RequestFacts, finish_audit  # noqa: E402
from gateway.config import config_from_dict  # noqa: E402
from gateway.dispatch import ROUTES  # noqa: E402
from gateway.repository.cli import DEFAULTS, _Code, build_submission  # noqa: E402
from gateway.soap.service import SoapRequest, handle_soap  # noqa: E402
from profiles.errors import WSA_NS  # noqa: E402
from profiles.pix.ports import PatientRecord, parse_cx  # noqa: E402
from profiles.transaction import Attachment  # noqa: E402
from profiles.xca.query import ITI38_ACTION, stored_query_to_xml  # noqa: E402
from profiles.xds.iti41 import ProvideAndRegisterRequest, provide_and_register  # noqa: E402
from profiles.xds.storedquery import DE, QueryName, build  # noqa: E402
from profiles.xds.values import dtm_from_datetime  # noqa: E402

S12 = "http://www.w3.org/2003/05/soap-envelope"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
HOME_OID = "2.999.77"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
ROUTE = next(r for r in ROUTES if r.path == "/xca/query")
CONTENT_TYPE = f'application/soap+xml; charset=UTF-8; action="{ITI38_ACTION}"'
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def patient(size: int) -> str:
    return f"B-{size}^^^&{HOME_OID}.1&ISO"


def document(size: int, i: int) -> bytes:
    return (f"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>bench {size}/{i}</title>"
            "</ClinicalDocument>").encode()


def community(folder: Path, database_url: str | None, sizes: list[int]):
    url = database_url or f"sqlite:///{folder / 'gateway.db'}"
    config = config_from_dict({
        "community": {"home_community_id": HOME_OID, "name": "Bench"},
        "storage": {"data_dir": str(folder / "data")},
        "database": {"url": url},
    }, base=folder, environ={})
    app = create_app(config)
    rt = app.extensions["gateway"]
    codes = {k: _Code().convert(v, None, None) for k, v in DEFAULTS.items()}
    for size in sizes:
        rt.ports.patients.add(PatientRecord(parse_cx(patient(size))))
        for i in range(size):
            data = document(size, i)
            now = datetime.now(UTC)
            submission = build_submission(patient=patient(size), title=f"bench {i}",
                                          mime_type="text/xml", codes=codes, now=now,
                                          source_id=HOME_OID)
            content = Attachment("doc", "text/xml", len(data),
                                 hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                                 partial(io.BytesIO, data))
            provide_and_register(ProvideAndRegisterRequest(submission, {"Document01": content}),
                                 rt.ports.repository, actor="repository",
                                 time=dtm_from_datetime(now))
    return rt


def request_bytes(size: int) -> bytes:
    query = build(QueryName.FIND_DOCUMENTS, {DE + "PatientId": f"'{patient(size)}'",
                                             DE + "Status": [APPROVED]})
    return (f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
            f"<wsa:Action e:mustUnderstand='true'>{ITI38_ACTION}</wsa:Action>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            "<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous"
            "</wsa:Address></wsa:ReplyTo>"
            "</e:Header><e:Body>").encode() + etree.tostring(stored_query_to_xml(query)) + (
                b"</e:Body></e:Envelope>")


def answer(rt, data: bytes, *, audited: bool) -> bytes:
    """One request through handle_soap, as gateway.views._post makes it; the answer bytes."""
    request_id = uuid.uuid4().hex
    audit = (rt.audit.request(RequestFacts(request_id, "https://localhost/xca/query",
                                           "127.0.0.1", "CN=bench")) if audited else None)
    resp = handle_soap(
        ROUTE,
        SoapRequest(path=ROUTE.path, content_type=CONTENT_TYPE, stream=io.BytesIO(data),
                    content_length=len(data), soap_action=None, request_id=request_id,
                    peer_subject="CN=bench"),
        home_community_id=rt.config.community.home_community_id, limits=rt.limits,
        ports=rt.ports, security=None, audit=audit)
    out = b"".join(resp.body)
    if audit is not None:
        finish_audit(audit, resp)
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status}: {out[:400]!r}")
    return out


def interleaved(variants: dict, warmup: int, n: int, block: int = 10) -> dict[str, list[float]]:
    """Microseconds of thread CPU per call of each variant, the variants taking turns in
    blocks of ``block`` calls: whatever else the machine does weighs on all of them
    alike, and within a block each runs warm, as a busy server's requests do."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(-(-(warmup + n) // block)):
        for name, work in variants.items():
            for _ in range(block):
                t0 = time.thread_time_ns()
                work()
                out[name].append((time.thread_time_ns() - t0) / 1000)
    return {name: values[warmup:warmup + n] for name, values in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    warmup = max(10, args.requests // 10)

    with tempfile.TemporaryDirectory(prefix="xca-bench-") as tmp:
        rt = community(Path(tmp), args.database_url, sizes)
        print(f"{platform.system()} {platform.release()} {platform.machine()}, Python "
              f"{platform.python_version()}, lxml {etree.__version__}, "
              f"{rt.database.engine.url.get_backend_name()}; XUA off; median of "
              f"{args.requests} requests (thread CPU)")
        print(f"{'documents':>9} {'request':>8} {'response':>9} {'+ audit':>10} "
              f"{'handle_soap':>12} {'floor':>8} {'× floor':>8}")
        for size in sizes:
            data = request_bytes(size)
            reply = answer(rt, data, audited=False)
            tree = etree.fromstring(reply, PARSER)
            found = len(tree.findall(f".//{{{RIM}}}ExtrinsicObject"))
            if found != size:
                raise SystemExit(f"{size} documents expected, the answer holds {found}")

            def floor(data=data, tree=tree) -> None:
                etree.fromstring(data, PARSER)
                etree.tostring(tree)

            variants = {
                "audited": lambda data=data: answer(rt, data, audited=True),
                "plain": lambda data=data: answer(rt, data, audited=False),
                "floor": floor,
            }
            samples = interleaved(variants, warmup, args.requests)
            results = {name: statistics.median(values) for name, values in samples.items()}
            print(f"{size:>9} {len(data):>7}B {len(reply):>8}B "
                  f"{results['audited'] / 1000:>8.2f}ms {results['plain'] / 1000:>10.2f}ms "
                  f"{results['floor'] / 1000:>6.3f}ms {results['plain'] / results['floor']:>7.0f}×")
        rt.database.dispose()


if __name__ == "__main__":
    main()
