"""The SOAP pipeline end to end in process: routing by action, error forms, faults."""

import io

import pytest
from lxml import etree

from gateway.dispatch import Route
from gateway.soap.envelope import SoapVersion
from gateway.soap.service import Limits, SoapRequest, handle_soap
from profiles.errors import WSA_NS, XDSRegistryMetadataError, XDSUnknownPatientId
from profiles.transaction import ErrorForm, Transaction

S12 = SoapVersion.SOAP12.value
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LIMITS = Limits(max_message_bytes=1024 * 1024, max_attachment_bytes=1024 * 1024)


def _parse(body, ctx):
    return body.get("mode", "ok")


def _handle(mode, ctx):
    if mode == "gateway-error":
        raise XDSUnknownPatientId("patient 42 unknown", location="doc1")
    if mode == "two-errors":
        raise XDSRegistryMetadataError.collect(
            [XDSRegistryMetadataError("a missing"), XDSUnknownPatientId("b unknown")]
        )
    if mode == "crash":
        raise RuntimeError("secret internal detail /etc/passwd")
    return mode


def _serialize(result):
    el = etree.Element(f"{{{RS}}}RegistryResponse")
    el.set("status", "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success")
    return el


ECHO = Transaction(
    "T-1", "Test", "urn:test:Do", "urn:test:DoResponse", ErrorForm.REGISTRY_RESPONSE,
    parse=_parse, handle=_handle, serialize=_serialize,
)
PLANNED = Transaction("T-2", "Later", "urn:test:Later", "urn:test:LaterResponse",
                      ErrorForm.REGISTRY_RESPONSE)
ROUTE = Route("/test", "test", "none.wsdl", (ECHO, PLANNED))


def request(action: str | None, *, mode: str = "ok", ns: str = S12, ct="application/soap+xml",
            message_id: str = "urn:uuid:req-1", soap_action=None) -> SoapRequest:
    hdr = ""
    if action:
        hdr = (f"<wsa:Action xmlns:wsa='{WSA_NS}'>{action}</wsa:Action>"
               f"<wsa:MessageID xmlns:wsa='{WSA_NS}'>{message_id}</wsa:MessageID>")
    xml = (f"<e:Envelope xmlns:e='{ns}'><e:Header>{hdr}</e:Header>"
           f"<e:Body><t:Req xmlns:t='urn:test' mode='{mode}'/></e:Body></e:Envelope>").encode()
    return SoapRequest("/test", ct, io.BytesIO(xml), len(xml), soap_action, "rid-1")


def answer(req: SoapRequest):
    resp = handle_soap(ROUTE, req, home_community_id="urn:oid:1.2.3", limits=LIMITS)
    return resp, etree.fromstring(b"".join(resp.body))


def test_success_reply_has_reply_action_and_relates_to():
    resp, doc = answer(request("urn:test:Do"))
    assert resp.status == 200 and resp.outcome == "success"
    assert resp.content_type.startswith("application/soap+xml")
    assert doc.findtext(f".//{{{WSA_NS}}}Action") == "urn:test:DoResponse"
    assert doc.findtext(f".//{{{WSA_NS}}}RelatesTo") == "urn:uuid:req-1"
    assert doc.find(f".//{{{RS}}}RegistryResponse") is not None


def fault_of(doc):
    code = doc.findtext(f".//{{{S12}}}Fault/{{{S12}}}Code/{{{S12}}}Value")
    sub = doc.findtext(f".//{{{S12}}}Subcode/{{{S12}}}Value")
    reason = doc.findtext(f".//{{{S12}}}Reason/{{{S12}}}Text")
    return code, sub, reason


def test_action_of_another_path_is_action_not_supported():
    resp, doc = answer(request("urn:ihe:iti:2007:CrossGatewayQuery"))
    assert resp.status == 400 and resp.outcome == "fault"
    code, sub, _ = fault_of(doc)
    assert code == "env:Sender" and sub.endswith(":ActionNotSupported")
    assert doc.findtext(f".//{{{WSA_NS}}}ProblemAction/{{{WSA_NS}}}Action") == (
        "urn:ihe:iti:2007:CrossGatewayQuery"
    )
    assert doc.findtext(f".//{{{WSA_NS}}}RelatesTo") == "urn:uuid:req-1"


def test_missing_action_is_a_fault():
    resp, doc = answer(request(None))
    assert fault_of(doc)[1].endswith(":MessageAddressingHeaderRequired")


def test_planned_transaction_says_not_implemented():
    resp, doc = answer(request("urn:test:Later"))
    code, _, reason = fault_of(doc)
    assert resp.status == 500 and code == "env:Receiver"
    assert "T-2" in reason and "not implemented" in reason


def test_gateway_error_becomes_the_transactions_error_form():
    resp, doc = answer(request("urn:test:Do", mode="gateway-error"))
    assert resp.status == 200 and resp.outcome == "error"
    rr = doc.find(f".//{{{RS}}}RegistryResponse")
    assert rr.get("status").endswith(":Failure")
    err = rr.find(f"{{{RS}}}RegistryErrorList/{{{RS}}}RegistryError")
    assert (err.get("errorCode"), err.get("codeContext"), err.get("location")) == (
        "XDSUnknownPatientId", "patient 42 unknown", "doc1")


def test_every_problem_is_reported():
    _, doc = answer(request("urn:test:Do", mode="two-errors"))
    codes = [e.get("errorCode") for e in doc.iter(f"{{{RS}}}RegistryError")]
    assert codes == ["XDSRegistryMetadataError", "XDSUnknownPatientId"]


def test_unexpected_exception_leaks_nothing(caplog):
    resp, doc = answer(request("urn:test:Do", mode="crash"))
    code, _, reason = fault_of(doc)
    assert resp.status == 500 and code == "env:Receiver"
    assert "rid-1" in reason
    text = etree.tostring(doc).decode()
    assert "secret" not in text and "passwd" not in text and "Traceback" not in text
    assert any("unexpected error" in r.message for r in caplog.records)


def test_soap11_request_is_answered_in_soap11():
    soap11 = SoapVersion.SOAP11.value
    resp, doc = answer(request(None, ns=soap11, ct="text/xml; charset=utf-8",
                               soap_action="urn:test:Do"))
    assert resp.status == 200 and resp.content_type.startswith("text/xml")
    assert etree.QName(doc).namespace == soap11


def test_soap11_fault_for_unknown_soapaction():
    soap11 = SoapVersion.SOAP11.value
    resp, doc = answer(request(None, ns=soap11, ct="text/xml", soap_action="urn:nope"))
    assert resp.status == 500
    assert doc.findtext(".//faultcode") == "soapenv:Client"


@pytest.mark.parametrize("ct", ["application/json", "text/plain", ""])
def test_unsupported_content_type(ct):
    resp, doc = answer(request("urn:test:Do", ct=ct))
    assert resp.status == 400 and fault_of(doc)[0] == "env:Sender"


def test_oversized_message_is_refused_before_reading():
    req = request("urn:test:Do")
    big = SoapRequest("/test", "application/soap+xml", io.BytesIO(b"x" * 10), 10**9, None, "r")
    resp, doc = answer(big)
    assert resp.status == 400 and "size" in fault_of(doc)[2]
    assert req  # the normal request is untouched


def test_xxe_in_a_request_is_a_sender_fault(tmp_path):
    secret = tmp_path / "s.txt"
    secret.write_text("SECRET-CONTENT")
    xml = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret}">]>'
           f"<e:Envelope xmlns:e='{S12}'><e:Body><t:R xmlns:t='urn:t'>&x;</t:R></e:Body>"
           "</e:Envelope>").encode()
    resp, doc = answer(SoapRequest("/test", "application/soap+xml", io.BytesIO(xml),
                                   len(xml), None, "r"))
    assert resp.status == 400
    assert b"SECRET-CONTENT" not in etree.tostring(doc)
