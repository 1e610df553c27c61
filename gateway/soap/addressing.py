"""WS-Addressing 1.0 for SOAP: read the request's headers, write the reply's.

Rules (W3C WS-Addressing 1.0 SOAP binding; NIST SoapMessageValidator):
exactly one ``wsa:Action``; at most one MessageID, To, ReplyTo, FaultTo, From;
Action text without surrounding white space. A reply carries the transaction's
reply action, a fresh MessageID and ``RelatesTo`` = the request's MessageID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from profiles.errors import WSA_NS, SoapFault

ANONYMOUS = f"{WSA_NS}/anonymous"
FAULT_ACTION = f"{WSA_NS}/fault"
_SINGLE = ("Action", "MessageID", "To", "ReplyTo", "FaultTo", "From")


@dataclass(frozen=True)
class Addressing:
    action: str
    message_id: str | None = None
    to: str | None = None
    reply_to: str | None = None
    relates_to: str | None = None


def addressing_fault(subcode: str, reason: str, **detail: str) -> SoapFault:
    return SoapFault("Sender", reason, [(WSA_NS, subcode)], detail=dict(detail))


def read_addressing(headers: tuple[etree._Element, ...], *, fallback_action: str | None = None):
    """Return the request's Addressing; ``fallback_action`` serves SOAP 1.1's SOAPAction."""
    found: dict[str, list[etree._Element]] = {}
    for h in headers:
        qn = etree.QName(h)
        if qn.namespace == WSA_NS:
            found.setdefault(qn.localname, []).append(h)
    for name in _SINGLE:
        if len(found.get(name, [])) > 1:
            raise addressing_fault(
                "InvalidAddressingHeader",
                f"More than one wsa:{name} header",
                ProblemHeaderQName=f"wsa:{name}",
            )
    actions = found.get("Action")
    if not actions:
        if fallback_action:
            return Addressing(action=fallback_action)
        raise addressing_fault(
            "MessageAddressingHeaderRequired",
            "A required header representing a Message Addressing Property is not present",
            ProblemHeaderQName="wsa:Action",
        )
    raw_action = actions[0].text or ""
    action = raw_action.strip()
    if not action:
        raise addressing_fault(
            "InvalidAddressingHeader", "wsa:Action is empty", ProblemHeaderQName="wsa:Action"
        )

    def text(name: str) -> str | None:
        els = found.get(name)
        return (els[0].text or "").strip() or None if els else None

    reply_to = None
    if found.get("ReplyTo"):
        addr = found["ReplyTo"][0].find(f"{{{WSA_NS}}}Address")
        reply_to = (addr.text or "").strip() if addr is not None else None
    return Addressing(
        action=action,
        message_id=text("MessageID"),
        to=text("To"),
        reply_to=reply_to,
        relates_to=text("RelatesTo"),
    )


def reply_headers(action: str, relates_to: str | None) -> list[etree._Element]:
    """wsa:Action, wsa:MessageID and wsa:RelatesTo for a response or fault."""
    nsmap = {"wsa": WSA_NS}
    out = []
    el = etree.Element(f"{{{WSA_NS}}}Action", nsmap=nsmap)
    el.text = action
    out.append(el)
    el = etree.Element(f"{{{WSA_NS}}}MessageID", nsmap=nsmap)
    el.text = f"urn:uuid:{uuid.uuid4()}"
    out.append(el)
    if relates_to:
        el = etree.Element(f"{{{WSA_NS}}}RelatesTo", nsmap=nsmap)
        el.text = relates_to
        out.append(el)
    return out
