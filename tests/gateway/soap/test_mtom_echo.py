"""DIAG-MTOM, the MTOM echo: through the SOAP pipeline, then through the Flask app."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest
from lxml import etree

from gateway.diagnostics import DIAG_NS, MTOM_ECHO, XOP_NS
from gateway.dispatch import Route
from gateway.soap import mtom
from gateway.soap.service import Limits, SoapRequest, handle_soap, iter_and_cleanup
from profiles.errors import WSA_NS
from profiles.transaction import OutgoingAttachment
from profiles.xop import content_id_from_href

S12 = "http://www.w3.org/2003/05/soap-envelope"
ROUTE = Route("/diagnostics/mtom-echo", "diagnostics", "diagnostics.wsdl", (MTOM_ECHO,))


def envelope(parts_xml: str, action: str = MTOM_ECHO.action) -> bytes:
    return (
        f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
        f"<wsa:Action e:mustUnderstand='1'>{action}</wsa:Action>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID></e:Header><e:Body>"
        f"<diag:EchoRequest xmlns:diag='{DIAG_NS}' xmlns:xop='{XOP_NS}'>{parts_xml}"
        "</diag:EchoRequest></e:Body></e:Envelope>"
    ).encode()


def echo_request(payloads: list[bytes], inline: list[bytes] = ()) -> tuple[str, bytes]:
    """An MTOM echo request: one xop:Include per payload, then the inline base64 parts."""
    atts, parts = [], ""
    for i, data in enumerate(payloads):
        cid = f"part{i}@bench.example"
        atts.append(OutgoingAttachment(cid, "application/octet-stream", lambda d=data: iter([d])))
        parts += f"<diag:Part><xop:Include href='{mtom.href_for(cid)}'/></diag:Part>"
    for data in inline:
        parts += f"<diag:Part>{base64.encodebytes(data).decode()}</diag:Part>"
    content_type, body = mtom.write_multipart(
        envelope(parts), atts, soap_media_type="application/soap+xml", action=MTOM_ECHO.action
    )
    return content_type, b"".join(body)


def check_echo(content_type: str, body: bytes, expected: list[bytes]) -> None:
    """The response is MTOM; each Part's hash, size and returned bytes match the sent ones."""
    assert mtom.parse_content_type(content_type)[0] == "multipart/related"
    with mtom.read_multipart(
        io.BytesIO(body), content_type, max_root_bytes=10**6, max_attachment_bytes=10**8,
        spool_dir=None,
    ) as message:
        doc = etree.fromstring(message.root)
        action = doc.findtext(f".//{{{WSA_NS}}}Action")
        assert action == "urn:ihe-gateway:diagnostics:MtomEchoResponse"
        parts = doc.findall(f".//{{{DIAG_NS}}}EchoResponse/{{{DIAG_NS}}}Part")
        assert len(parts) == len(expected)
        for part, data in zip(parts, expected, strict=True):
            digest = hashlib.sha1(data).hexdigest()
            assert part.get("sha1") == digest and part.get("size") == str(len(data))
            href = part.find(f"{{{XOP_NS}}}Include").get("href")
            att = message.attachments[content_id_from_href(href)]
            assert att.sha1 == digest and att.size == len(data)
            with att.open() as f:
                assert f.read() == data


def soap(content_type: str, body: bytes, spool: Path):
    limits = Limits(max_message_bytes=10**6, max_attachment_bytes=10**8, spool_dir=str(spool))
    req = SoapRequest(ROUTE.path, content_type, io.BytesIO(body), len(body), None, "rid-1")
    resp = handle_soap(ROUTE, req, home_community_id="urn:oid:1.2.3", limits=limits)
    return resp, b"".join(iter_and_cleanup(resp))


PAYLOADS = [os.urandom(1_000_000) + b"\r\n--", b"", b"<xml/>\n"]


def test_echo_through_the_soap_pipeline(tmp_path):
    inline = [b"inline \x00\xff bytes"]
    resp, body = soap(*echo_request(PAYLOADS, inline), tmp_path)
    assert resp.status == 200 and resp.outcome == "success"
    assert resp.transaction == "DIAG-MTOM"
    assert resp.body.length == len(body)
    check_echo(resp.content_type, body, PAYLOADS + inline)
    assert list(tmp_path.iterdir()) == []  # spooled files removed once the body was sent


def fault_reason(body: bytes) -> str:
    doc = etree.fromstring(body)
    assert doc.findtext(f".//{{{S12}}}Code/{{{S12}}}Value") == "env:Sender"
    return doc.findtext(f".//{{{S12}}}Reason/{{{S12}}}Text")


@pytest.mark.parametrize(
    "parts, words",
    [
        ("<diag:Part><xop:Include href='cid:missing@x'/></diag:Part>", "attachment"),
        ("<diag:Part>!!not base64!!</diag:Part>", "base64"),
        ("<diag:Part><diag:Other/></diag:Part>", "xop:Include"),
    ],
)
def test_bad_echo_requests_are_sender_faults(parts, words, tmp_path):
    content_type, body = mtom.write_multipart(
        envelope(parts), [], soap_media_type="application/soap+xml", action=None
    )
    resp, out = soap(content_type, b"".join(body), tmp_path)
    assert resp.status == 400 and resp.outcome == "fault"
    assert words in fault_reason(out)


def test_wrong_body_element_is_a_sender_fault(tmp_path):
    xml = envelope("").replace(b"EchoRequest", b"Other")
    resp, out = soap("application/soap+xml", xml, tmp_path)
    assert resp.status == 400 and "EchoRequest" in fault_reason(out)


def test_plain_soap_request_with_inline_parts_gets_an_mtom_answer(tmp_path):
    data = b"small inline document"
    xml = envelope(f"<diag:Part>{base64.b64encode(data).decode()}</diag:Part>")
    resp, out = soap("application/soap+xml; charset=UTF-8", xml, tmp_path)
    assert resp.status == 200
    check_echo(resp.content_type, out, [data])


def make_app(tmp_path: Path, database_url: str):
    from gateway.app import create_app
    from gateway.config import config_from_dict
    from tests.conftest import make_config_dict

    cfg = make_config_dict(tmp_path / "data", database_url, diagnostics={"enabled": True})
    return create_app(config_from_dict(cfg, base=tmp_path))


def test_echo_through_flask(tmp_path, database_url):
    app = make_app(tmp_path, database_url)
    client = app.test_client()
    content_type, body = echo_request(PAYLOADS, [b"x"])
    resp = client.post(
        "/diagnostics/mtom-echo", data=body, headers={"Content-Type": content_type}
    )
    assert resp.status_code == 200
    check_echo(resp.headers["Content-Type"], resp.get_data(), PAYLOADS + [b"x"])
    spool = tmp_path / "data" / "spool"
    assert spool.is_dir() and list(spool.iterdir()) == []


def test_echo_is_off_unless_diagnostics_are_enabled(tmp_path, database_url):
    from gateway.app import create_app
    from gateway.config import config_from_dict
    from tests.conftest import make_config_dict

    cfg = make_config_dict(tmp_path / "data", database_url)
    client = create_app(config_from_dict(cfg, base=tmp_path)).test_client()
    content_type, body = echo_request([b"abc"])
    resp = client.post("/diagnostics/mtom-echo", data=body, headers={"Content-Type": content_type})
    assert resp.status_code == 404
