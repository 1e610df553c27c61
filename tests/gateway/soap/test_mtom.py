"""MTOM/XOP reading and writing: real peers' bodies, round trips, refusals."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
from lxml import etree

from gateway.soap import mtom
from profiles.errors import SoapFault
from profiles.transaction import OutgoingAttachment
from profiles.xop import content_id_from_href
from tests.conftest import CONFORMANCE

METRIPORT = CONFORMANCE / "messages" / "metriport"
NIST_WIRE = CONFORMANCE.joinpath(
    "messages", "nist-toolkit", "xds-iti41-ProvideAndRegister-request_mtom-http-wire.txt"
)
XOP_NS = "http://www.w3.org/2004/08/xop/include"
BIG = 10 * 1024 * 1024


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def read(body: bytes, content_type: str, *, step: int | None = None, **kw):
    opts = {"max_root_bytes": BIG, "max_attachment_bytes": BIG, "spool_dir": None} | kw
    stream = Trickle(body, step) if step else io.BytesIO(body)
    return mtom.read_multipart(stream, content_type, **opts)


def raw_parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a whole body the simple, non-streaming way, as an independent oracle."""
    pieces = re.split(rb"\r?\n--" + re.escape(boundary.encode()), b"\n" + body)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.split(b"\n", 1)[1]  # rest of the delimiter line
        m = re.match(rb"((?:[^\r\n]+\r?\n)*)\r?\n", piece)
        head, data = m.group(1), piece[m.end() :]
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts


def cid(headers: dict[str, str]) -> str:
    return headers.get("content-id", "").strip().strip("<>")


def mime_files() -> list[Path]:
    files = sorted(METRIPORT.glob("*.mime"))
    assert len(files) >= 6, "the Metriport MTOM bodies are missing"
    return files


def metriport_body(path: Path) -> tuple[bytes, str, str]:
    """Body, boundary (from the first ``--`` line, as the MANIFEST says) and a Content-Type
    without ``start``, as those peers send it."""
    body = path.read_bytes()
    boundary = body.lstrip().split(b"\n", 1)[0][2:].strip().decode()
    return body, boundary, f'multipart/related; type="application/xop+xml"; boundary="{boundary}"'


def check_against_oracle(message, body: bytes, boundary: str) -> None:
    parts = raw_parts(body, boundary)
    root_headers, root_data = parts[0]
    assert message.root == root_data
    assert etree.QName(etree.fromstring(message.root)).localname == "Envelope"
    expected = {cid(h): data for h, data in parts[1:]}
    assert set(message.attachments) == set(expected)
    for key, data in expected.items():
        att = message.attachments[key]
        assert att.content_id == key
        assert att.size == len(data)
        assert att.sha1 == hashlib.sha1(data).hexdigest()
        with att.open() as f:
            assert f.read() == data
    # Every XOP reference in the envelope resolves to an attachment.
    for inc in etree.fromstring(message.root).iter(f"{{{XOP_NS}}}Include"):
        assert content_id_from_href(inc.get("href")) in message.attachments


@pytest.mark.parametrize("path", mime_files(), ids=lambda p: p.stem)
@pytest.mark.parametrize("step", [None, 1, 7])
def test_reads_peer_bodies(path: Path, step, tmp_path):
    body, boundary, ct = metriport_body(path)
    message = read(body, ct, step=step, spool_dir=str(tmp_path))
    assert message.root_media_type == "application/soap+xml"
    check_against_oracle(message, body, boundary)
    message.close()
    assert list(tmp_path.iterdir()) == []


def test_peer_bodies_cover_the_quirks():
    bodies = {p.stem: metriport_body(p)[0] for p in mime_files()}
    assert any(b"\r\n" not in b for b in bodies.values())  # LF only
    assert any(b.count(b"\n") == b.count(b"\r\n") for b in bodies.values())  # CRLF
    assert any(b"content-id:" in b for b in bodies.values())  # lowercase headers
    cxf = METRIPORT / "xca-iti39-mtom-cxf-root-only-inline-empty-document.mime"
    root_only = read(*metriport_body(cxf)[::2])
    assert root_only.attachments == {}
    two = read(*metriport_body(METRIPORT / "xca-iti39-mtom-wcf-epic-2-attachments.mime")[::2])
    assert len(two.attachments) == 2


def test_mixed_line_endings(tmp_path):
    """CRLF framing for the root part, LF for the rest (the MANIFEST warns of such bodies)."""
    path = METRIPORT / "xca-iti39-mtom-wcf-epic-1-attachment-newdocumentuniqueid.mime"
    body, boundary, ct = metriport_body(path)
    head, rest = body.split(b"\n\n", 1)
    mixed = head.replace(b"\n", b"\r\n") + b"\r\n\r\n" + rest
    assert b"\r\n" in mixed and re.search(rb"[^\r]\n", mixed)
    message = read(mixed, ct, step=2)
    check_against_oracle(message, mixed, boundary)


def nist_wire() -> tuple[str, bytes]:
    head, body = NIST_WIRE.read_bytes().split(b"\n\n", 1)
    lines = head.decode().splitlines()
    assert lines[0].startswith("POST ")
    content_type = next(v for k, _, v in (ln.partition(":") for ln in lines) if k.lower() ==
                        "content-type")
    return content_type.strip(), body


@pytest.mark.parametrize("step", [None, 3])
def test_reads_nist_wire_capture(step):
    content_type, body = nist_wire()
    message = read(body, content_type, step=step)
    assert message.root_media_type == "application/soap+xml"
    assert b"ProvideAndRegisterDocumentSetRequest" in message.root
    (key,) = message.attachments
    assert key == "1.urn:uuid:3D4B161591CD1DEC0C1286850962319@apache.org"
    assert message.attachments[key].content_type == "text/plain"
    boundary = mtom.parse_content_type(content_type)[1]["boundary"]
    check_against_oracle(message, body, boundary)


def test_start_parameter_picks_the_root_even_when_it_is_not_first():
    body = (
        b"--b\r\nContent-ID: <att>\r\n\r\nDATA\r\n"
        b"--b\r\nContent-ID: <root@x>\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\n"
        b"\r\n<Envelope/>\r\n--b--\r\n"
    )
    message = read(body, 'multipart/related; boundary=b; start="<root@x>"')
    assert message.root == b"<Envelope/>"
    assert message.root_media_type == "text/xml"
    assert message.attachments["att"].size == 4


def test_preamble_padding_epilogue_and_boundary_lookalikes():
    data = b"x\r\n--bb-not-a-delimiter\r\n--bbb\n--bb\tX--"
    body = (
        b"This is a preamble.\r\n--bb  \r\nContent-Type: application/soap+xml\r\n\r\n<E/>\r\n"
        b"--bb\t\r\nContent-Id:\r\n <a>\r\n\r\n" + data + b"\r\n--bb--  \r\nepilogue text\r\n"
    )
    for step in (None, 1, 5):
        message = read(body, "multipart/related; boundary=bb", step=step)
        assert message.root == b"<E/>"
        with message.attachments["a"].open() as f:
            assert f.read() == data


def test_content_id_from_href():
    assert content_id_from_href("cid:1.urn:uuid:abc@apache.org") == "1.urn:uuid:abc@apache.org"
    assert content_id_from_href(" CID:a%40b%20c ") == "a@b c"
    assert content_id_from_href("cid:http://tempuri.org/1/6") == "http://tempuri.org/1/6"
    body = b"--b\r\n\r\n<E/>\r\n--b\r\nContent-ID: <a%40b>\r\n\r\nz\r\n--b--"
    message = read(body, "multipart/related; boundary=b")
    assert content_id_from_href("cid:a@b") in message.attachments
    assert content_id_from_href("cid:a%40b") in message.attachments


PAYLOADS = [
    os.urandom(300_000) + b"\r\n",
    b"\r\n--MIMEBoundary_0000\r\n--MIMEBoundary_" + os.urandom(70_000) + b"\r\n--\r\n",
    b"",
    b"\n",
    bytes(range(256)) * 513,
]


def attachment(i: int, data: bytes, content_id: str | None = None) -> OutgoingAttachment:
    def chunks():
        for k in range(0, len(data), 10_000):
            yield data[k : k + 10_000]

    cid = content_id or f"doc{i}@example.org"
    return OutgoingAttachment(cid, "application/octet-stream", chunks, len(data))


@pytest.mark.parametrize("soap", ["application/soap+xml", "text/xml"])
@pytest.mark.parametrize("step", [None, 4093])
def test_round_trip(soap, step, tmp_path):
    atts = [attachment(i, d) for i, d in enumerate(PAYLOADS)]
    atts.append(attachment(99, b"odd id", "a b/c@example.org"))
    xml = b"<?xml version='1.0' encoding='UTF-8'?><Envelope>\r\n--fake\r\n</Envelope>"
    content_type, body = mtom.write_multipart(xml, atts, soap_media_type=soap, action="urn:x:Do")
    wire = b"".join(body)
    media, params = mtom.parse_content_type(content_type)
    assert media == "multipart/related"
    assert params["type"] == "application/xop+xml"
    assert params["start-info"] == soap and params["action"] == "urn:x:Do"
    assert body.length == len(wire)
    assert b"\n" not in wire.replace(b"\r\n", b"").split(b"<?xml")[0]  # CRLF framing
    message = read(wire, content_type, step=step, spool_dir=str(tmp_path))
    assert message.root == xml and message.root_media_type == soap
    assert len(message.attachments) == len(atts)
    for att, data in zip(atts, PAYLOADS + [b"odd id"], strict=True):
        got = message.attachments[content_id_from_href(mtom.href_for(att.content_id))]
        assert got.size == len(data) and got.sha1 == hashlib.sha1(data).hexdigest()
        with got.open() as f:
            assert f.read() == data
    message.close()
    message.close()
    assert list(tmp_path.iterdir()) == []


def test_write_is_lazy_and_streams_each_chunk():
    pulled: list[int] = []

    def chunks():
        for i in range(1000):
            pulled.append(i)
            yield b"x" * 1024

    content_type, body = mtom.write_multipart(
        b"<E/>", [OutgoingAttachment("a@x", "text/plain", chunks)], soap_media_type="text/xml",
        action=None,
    )
    assert "action=" not in content_type and body.length is None
    it = iter(body)
    next(it), next(it)  # root part, attachment header
    assert pulled == []
    next(it)
    assert pulled == [0]
    assert sum(map(len, it)) > 999 * 1024


def test_write_refuses_a_short_attachment():
    att = OutgoingAttachment("a@x", "text/plain", lambda: iter([b"abc"]), size=4)
    _, body = mtom.write_multipart(b"<E/>", [att], soap_media_type="text/xml", action=None)
    with pytest.raises(RuntimeError):
        b"".join(body)


def test_write_refuses_header_injection():
    att = OutgoingAttachment("a@x>\r\nX-Evil: 1", "text/plain", lambda: iter([b""]))
    with pytest.raises(ValueError):
        mtom.write_multipart(b"<E/>", [att], soap_media_type="text/xml", action=None)


GOOD = b"--b\r\nContent-ID: <r>\r\n\r\n<E/>\r\n--b\r\nContent-ID: <a>\r\n\r\n" + b"A" * 100 + (
    b"\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    "content_type, body, kw",
    [
        ("multipart/related", GOOD, {}),
        ('multipart/related; boundary=""', GOOD, {}),
        ("multipart/related; boundary=b", GOOD[:60], {}),  # cut inside the attachment
        ("multipart/related; boundary=b", GOOD[:-9], {}),  # no close delimiter
        ("multipart/related; boundary=b", GOOD[:-7], {}),  # cut inside the close delimiter
        ("multipart/related; boundary=b", GOOD[:14], {}),  # cut inside the headers
        ("multipart/related; boundary=b", GOOD, {"max_root_bytes": 3}),
        ("multipart/related; boundary=b", GOOD, {"max_attachment_bytes": 99}),
        ('multipart/related; boundary=b; start="<nope>"', GOOD, {}),
        ("multipart/related; boundary=b", b"no delimiter at all", {}),
        ("multipart/related; boundary=b", b"--b--\r\n", {}),
        ("multipart/related; boundary=b", GOOD.replace(b"<a>", b"<r>"), {}),
        ("multipart/related; boundary=b", GOOD.replace(b"<a>\r\n", b"<a>\r\nbroken\r\n"), {}),
        ("multipart/related; boundary=b",
         GOOD.replace(b"<a>", b"<a>\r\nContent-Transfer-Encoding: base64"), {}),
        ("multipart/related; boundary=b",
         GOOD.replace(b"<r>", b"<r>\r\nContent-Type: text/plain"), {}),
        ("multipart/related; boundary=b",
         GOOD.replace(b"<r>", b"<r>\r\nX: " + b"h" * 20_000), {}),
    ],
    ids=[
        "no-boundary", "empty-boundary", "truncated", "no-close", "cut-close", "cut-headers",
        "root-over-cap", "attachment-over-cap", "start-names-no-part", "no-parts",
        "only-close", "duplicate-content-id", "bad-header-line", "base64-encoding",
        "root-not-soap", "huge-headers",
    ],
)
def test_bad_input_is_a_sender_fault_and_leaves_no_files(content_type, body, kw, tmp_path):
    with pytest.raises(SoapFault) as info:
        read(body, content_type, spool_dir=str(tmp_path), **kw)
    assert info.value.code == "Sender"
    assert info.value.reason and "Traceback" not in info.value.reason
    assert list(tmp_path.iterdir()) == []


def test_the_good_body_of_the_refusal_table_is_accepted():
    ct = "multipart/related; boundary=b"
    message = read(GOOD, ct, max_root_bytes=4, max_attachment_bytes=100)
    assert message.root == b"<E/>" and message.attachments["a"].size == 100


def test_a_stream_that_fails_is_a_sender_fault():
    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            raise ConnectionResetError("peer went away")

    with pytest.raises(SoapFault) as info:
        mtom.read_multipart(Broken(), "multipart/related; boundary=b", max_root_bytes=10,
                            max_attachment_bytes=10, spool_dir=None)
    assert info.value.code == "Sender" and "peer" not in info.value.reason


def test_is_multipart():
    assert mtom.is_multipart("multipart/related")
    assert not mtom.is_multipart("application/soap+xml")
    assert not mtom.is_multipart("multipart/form-data")
