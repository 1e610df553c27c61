"""SOAP 1.2 and 1.1 fault envelopes from a SoapFault.

SOAP 1.2 Part 1 §5.4: Code/Value (env:Sender, env:Receiver, env:MustUnderstand,
env:VersionMismatch) with nested Subcodes, Reason/Text with xml:lang, and an
optional Detail. HTTP status: 400 for Sender, 500 otherwise (Part 2 §7.5.1).
"""

from __future__ import annotations

from lxml import etree

from gateway.soap.addressing import FAULT_ACTION, reply_headers
from gateway.soap.envelope import SoapVersion, build_envelope
from profiles.errors import WSA_NS, SoapFault

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def http_status(fault: SoapFault, version: SoapVersion) -> int:
    if version is SoapVersion.SOAP12 and fault.code in ("Sender", "VersionMismatch"):
        return 400
    return 500


def fault_envelope(
    fault: SoapFault, version: SoapVersion, *, relates_to: str | None = None
) -> etree._Element:
    body = _fault12(fault) if version is SoapVersion.SOAP12 else _fault11(fault)
    headers = reply_headers(FAULT_ACTION, relates_to)
    if version is SoapVersion.SOAP12 and fault.code == "MustUnderstand":
        for qn in fault.not_understood:
            nu = etree.Element(
                f"{{{version.value}}}NotUnderstood", nsmap={"h": qn.namespace or ""}
            )
            nu.set("qname", f"h:{qn.localname}")
            headers.append(nu)
    if version is SoapVersion.SOAP12 and fault.code == "VersionMismatch":
        up = etree.Element(f"{{{version.value}}}Upgrade", nsmap={"env": version.value})
        supported = etree.SubElement(up, f"{{{version.value}}}SupportedEnvelope")
        supported.set("qname", "env:Envelope")
        headers.append(up)
    return build_envelope(version, body, headers)


def _fault12(fault: SoapFault) -> etree._Element:
    ns = SoapVersion.SOAP12.value
    nsmap = {"env": ns}
    for sub_ns, _ in fault.subcodes:
        if sub_ns == WSA_NS:
            nsmap["wsa"] = WSA_NS
    f = etree.Element(f"{{{ns}}}Fault", nsmap=nsmap)
    parent = etree.SubElement(f, f"{{{ns}}}Code")
    etree.SubElement(parent, f"{{{ns}}}Value").text = f"env:{fault.code}"
    for i, (sub_ns, local) in enumerate(fault.subcodes):
        prefix = next((p for p, u in nsmap.items() if u == sub_ns), None)
        if prefix is None:
            prefix = f"s{i}"
        sub = etree.SubElement(parent, f"{{{ns}}}Subcode", nsmap={prefix: sub_ns})
        etree.SubElement(sub, f"{{{ns}}}Value").text = f"{prefix}:{local}"
        parent = sub
    reason = etree.SubElement(f, f"{{{ns}}}Reason")
    text = etree.SubElement(reason, f"{{{ns}}}Text")
    text.set(XML_LANG, "en")
    text.text = fault.reason
    if fault.detail:
        d = etree.SubElement(f, f"{{{ns}}}Detail")
        for name, value in fault.detail.items():
            if name == "ProblemAction":
                pa = etree.SubElement(d, f"{{{WSA_NS}}}ProblemAction", nsmap={"wsa": WSA_NS})
                etree.SubElement(pa, f"{{{WSA_NS}}}Action").text = value
            else:
                etree.SubElement(d, f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS}).text = value
    return f


def _fault11(fault: SoapFault) -> etree._Element:
    ns = SoapVersion.SOAP11.value
    f = etree.Element(f"{{{ns}}}Fault", nsmap={"soapenv": ns})
    code = {"Sender": "Client", "Receiver": "Server"}.get(fault.code, fault.code)
    etree.SubElement(f, "faultcode").text = f"soapenv:{code}"
    etree.SubElement(f, "faultstring").text = fault.reason
    return f
