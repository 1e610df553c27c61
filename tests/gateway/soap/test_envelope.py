"""Envelopes: every peer sample parses; structure errors are Sender faults."""

from pathlib import Path

import pytest
from lxml import etree

from gateway.soap.addressing import read_addressing
from gateway.soap.envelope import SoapVersion, build_envelope, parse_envelope
from profiles.errors import WSA_NS, SoapFault

S12 = SoapVersion.SOAP12.value
LIMIT = 10 * 1024 * 1024


def sample_envelopes(root: Path) -> list[Path]:
    found = []
    for f in sorted([*root.glob("messages/**/*.xml"), *root.glob("nist-testkit/**/*.xml")]):
        head = f.read_bytes()[:4000]
        if b"Envelope" in head and (S12.encode() in head or b"xmlsoap.org/soap" in head):
            found.append(f)
    return found


def test_every_sample_envelope_parses(conformance: Path):
    files = sample_envelopes(conformance)
    assert len(files) >= 60, "expected the conformance envelopes"
    with_action = 0
    for f in files:
        env = parse_envelope(f.read_bytes(), max_bytes=LIMIT)
        assert env.body is not None, f
        if any(etree.QName(h) == etree.QName(WSA_NS, "Action") for h in env.headers):
            addressing = read_addressing(env.headers)
            assert addressing.action == addressing.action.strip() != ""
            with_action += 1
    assert with_action >= 30


def envelope(body: str = "<x:Req xmlns:x='urn:x'/>", headers: str = "", ns: str = S12) -> bytes:
    return (
        f"<e:Envelope xmlns:e='{ns}'><e:Header>{headers}</e:Header>"
        f"<e:Body>{body}</e:Body></e:Envelope>"
    ).encode()


def test_soap11_is_recognised():
    env = parse_envelope(envelope(ns=SoapVersion.SOAP11.value), max_bytes=LIMIT)
    assert env.version is SoapVersion.SOAP11


def test_unknown_envelope_namespace_is_version_mismatch():
    with pytest.raises(SoapFault) as exc:
        parse_envelope(envelope(ns="urn:not-soap"), max_bytes=LIMIT)
    assert exc.value.code == "VersionMismatch"


@pytest.mark.parametrize(
    "doc",
    [
        b"<notAnEnvelope/>",
        f"<e:Envelope xmlns:e='{S12}'><e:Header/></e:Envelope>".encode(),
        f"<e:Envelope xmlns:e='{S12}'><e:Body/><e:Body/></e:Envelope>".encode(),
        f"<e:Envelope xmlns:e='{S12}'><e:Body/><e:Header/></e:Envelope>".encode(),
        f"<e:Envelope xmlns:e='{S12}'><other/><e:Body/></e:Envelope>".encode(),
    ],
)
def test_malformed_envelopes_are_sender_faults(doc: bytes):
    with pytest.raises(SoapFault) as exc:
        parse_envelope(doc, max_bytes=LIMIT)
    assert exc.value.code == "Sender"


def test_must_understand_unknown_header_faults():
    hdr = f"<h:Custom xmlns:h='urn:custom' e:mustUnderstand='true' xmlns:e='{S12}'/>"
    with pytest.raises(SoapFault) as exc:
        parse_envelope(envelope(headers=hdr), max_bytes=LIMIT)
    assert exc.value.code == "MustUnderstand"
    assert exc.value.not_understood[0] == etree.QName("urn:custom", "Custom")


def test_must_understand_false_or_known_headers_pass():
    hdr = (
        f"<h:Custom xmlns:h='urn:custom' e:mustUnderstand='false' xmlns:e='{S12}'/>"
        f"<a:Action xmlns:a='{WSA_NS}' e:mustUnderstand='1' xmlns:e='{S12}'>urn:a</a:Action>"
    )
    env = parse_envelope(envelope(headers=hdr), max_bytes=LIMIT)
    assert len(env.headers) == 2


def test_build_envelope_round_trips():
    body = etree.Element("{urn:x}Resp")
    env = build_envelope(SoapVersion.SOAP12, body, [etree.Element("{urn:h}H")])
    parsed = parse_envelope(etree.tostring(env), max_bytes=LIMIT)
    assert etree.QName(parsed.body).localname == "Resp"
    assert etree.QName(parsed.headers[0]).namespace == "urn:h"
