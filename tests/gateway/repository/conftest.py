"""The gateway in process with its real repository, registry and blob store, and
helpers to send ITI-41/ITI-43 as real SOAP (plain or MTOM) through the Flask app."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from gateway.app import create_app
from gateway.config import config_from_dict
from gateway.soap import mtom
from profiles.errors import WSA_NS
from profiles.pix.ports import PatientRecord, parse_cx
from profiles.transaction import OutgoingAttachment
from tests.conftest import make_config_dict
from tests.profiles.xds.builders import PATIENT

S12 = "http://www.w3.org/2003/05/soap-envelope"
PNR = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"
HOME_OID = "1.3.6.1.4.1.21367.2011.2.1"
REPOSITORY_ID = HOME_OID + ".1"  # the default: home community OID + ".1"


def envelope(action: str, body: etree._Element | bytes) -> bytes:
    if isinstance(body, etree._Element):
        body = etree.tostring(body)
    return (
        (
            f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
            f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
            "<wsa:MessageID>urn:uuid:0f1e2d3c-0000-4000-8000-000000000041</wsa:MessageID>"
            "</e:Header><e:Body>"
        ).encode()
        + body
        + b"</e:Body></e:Envelope>"
    )


@dataclass
class Answer:
    status: int
    content_type: str
    body: etree._Element  # the SOAP Body's first child
    parts: dict[str, bytes]


@dataclass
class Gateway:
    client: object
    runtime: object
    spool: Path

    def know(self, *patients: str) -> None:
        for pid in patients:
            self.runtime.ports.patients.add(PatientRecord(parse_cx(pid)))

    def post(self, path: str, action: str, body, parts: dict[str, bytes] | None = None) -> Answer:
        xml = envelope(action, body)
        if parts is None:
            resp = self.client.post(path, data=xml, content_type="application/soap+xml")
        else:
            atts = [
                OutgoingAttachment(
                    cid, "application/octet-stream", lambda d=data: iter([d]), len(data)
                )
                for cid, data in parts.items()
            ]
            ct, stream = mtom.write_multipart(
                xml, atts, soap_media_type="application/soap+xml", action=action
            )
            resp = self.client.post(path, data=b"".join(stream), content_type=ct)
        return self.read(resp)

    def post_raw(self, path: str, content_type: str, data: bytes) -> Answer:
        return self.read(self.client.post(path, data=data, content_type=content_type))

    def read(self, resp) -> Answer:
        data = resp.get_data()
        ct = resp.headers["Content-Type"]
        resp.close()  # finishes the request's audit, as a WSGI server does
        parts: dict[str, bytes] = {}
        if ct.startswith("multipart/related"):
            with mtom.read_multipart(
                io.BytesIO(data),
                ct,
                max_root_bytes=1 << 24,
                max_attachment_bytes=1 << 30,
                spool_dir=None,
            ) as msg:
                root = msg.root
                for cid, att in msg.attachments.items():
                    with att.open() as f:
                        parts[cid] = f.read()
        else:
            root = data
        env = etree.fromstring(root)
        body = env.find(f"{{{S12}}}Body")
        return Answer(resp.status_code, ct, body[0], parts)


@pytest.fixture
def gateway(tmp_path: Path, database_url: str):
    cfg = config_from_dict(
        make_config_dict(
            tmp_path / "data", database_url, xua={"required_on_partner_endpoints": False}
        ),
        base=tmp_path,
        environ={},
    )
    app = create_app(cfg)
    rt = app.extensions["gateway"]
    gw = Gateway(app.test_client(), rt, tmp_path / "data" / "spool")
    gw.know(PATIENT)
    yield gw
    rt.database.dispose()
