"""Every fault shape we send validates against the SOAP 1.2 envelope schema."""

from pathlib import Path

import pytest
from lxml import etree

from gateway.soap.addressing import addressing_fault
from gateway.soap.envelope import SoapVersion
from gateway.soap.faults import fault_envelope, http_status
from profiles.errors import WSA_NS, WSSE_NS, SoapFault, receiver_fault, sender_fault

S12 = SoapVersion.SOAP12.value


@pytest.fixture(scope="module")
def envelope_schema(conformance: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(conformance / "schemas/soap/soap-1.2-envelope.xsd")))


FAULTS = {
    "sender": sender_fault("Message is not well-formed XML"),
    "receiver": receiver_fault("Internal error; request id abc"),
    "action": addressing_fault("ActionNotSupported", "not here", ProblemAction="urn:bad"),
    "header": addressing_fault(
        "MessageAddressingHeaderRequired", "missing", ProblemHeaderQName="wsa:Action"
    ),
    "invalid": addressing_fault("InvalidAddressingHeader", "dup", ProblemHeaderQName="wsa:To"),
    "security": SoapFault("Sender", "Security check failed", [(WSSE_NS, "InvalidSecurity")]),
    "nested": SoapFault("Sender", "two levels", [(WSA_NS, "InvalidAddressingHeader"),
                                                 (WSA_NS, "InvalidCardinality")]),
    "must": SoapFault("MustUnderstand", "not understood",
                      not_understood=[etree.QName("urn:custom", "Thing")]),
    "version": SoapFault("VersionMismatch", "wrong envelope"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_validates_against_soap12_schema(name: str, envelope_schema):
    env = fault_envelope(FAULTS[name], SoapVersion.SOAP12, relates_to="urn:uuid:req")
    doc = etree.fromstring(etree.tostring(env))
    assert envelope_schema.validate(doc), envelope_schema.error_log
    fault = doc.find(f".//{{{S12}}}Fault")
    assert fault.findtext(f"{{{S12}}}Code/{{{S12}}}Value") == f"env:{FAULTS[name].code}"


def subcode_qnames(doc) -> list[etree.QName]:
    out = []
    for value in doc.iterfind(f".//{{{S12}}}Subcode/{{{S12}}}Value"):
        prefix, local = value.text.split(":")
        out.append(etree.QName(value.nsmap[prefix], local))
    return out


def test_subcodes_resolve_to_their_namespaces():
    env = fault_envelope(FAULTS["nested"], SoapVersion.SOAP12)
    assert subcode_qnames(env) == [
        etree.QName(WSA_NS, "InvalidAddressingHeader"),
        etree.QName(WSA_NS, "InvalidCardinality"),
    ]
    env = fault_envelope(FAULTS["security"], SoapVersion.SOAP12)
    assert subcode_qnames(env) == [etree.QName(WSSE_NS, "InvalidSecurity")]


def test_action_not_supported_names_the_problem_action():
    env = fault_envelope(FAULTS["action"], SoapVersion.SOAP12)
    assert env.findtext(f".//{{{WSA_NS}}}ProblemAction/{{{WSA_NS}}}Action") == "urn:bad"
    assert env.findtext(f".//{{{WSA_NS}}}Action") == f"{WSA_NS}/fault"


def test_must_understand_lists_not_understood_headers():
    env = fault_envelope(FAULTS["must"], SoapVersion.SOAP12)
    nu = env.find(f".//{{{S12}}}NotUnderstood")
    prefix, local = nu.get("qname").split(":")
    assert etree.QName(nu.nsmap[prefix], local) == etree.QName("urn:custom", "Thing")


def test_soap11_fault_shape():
    env = fault_envelope(FAULTS["sender"], SoapVersion.SOAP11)
    assert env.findtext(".//faultcode") == "soapenv:Client"
    assert env.findtext(".//faultstring") == "Message is not well-formed XML"


def test_http_status():
    assert http_status(FAULTS["sender"], SoapVersion.SOAP12) == 400
    assert http_status(FAULTS["receiver"], SoapVersion.SOAP12) == 500
    assert http_status(FAULTS["sender"], SoapVersion.SOAP11) == 500
