"""The outbound SOAP client: SOAP 1.2 over mutual TLS to partner communities.

    OutboundClient.call(partner, transaction, action, body) -> SoapAnswer
      = send(prepare(...));  send(prepared) = answer(receive(prepared))
        raise ``gateway.transport.OutboundError`` (every failure a value the fan-out
        turns into a RegistryError; the tree is drawn in ``gateway.transport``)

``prepare`` builds the envelope (WS-Addressing, the partner's XUA header) and its bytes;
``receive`` puts them on the wire and reads the answer's bytes (I/O only); ``answer``
parses and checks them (CPU only). A fan-out prepares every request before the first
answer needs CPU, so the last partner is not asked late, and parses answers in a few
threads while many wait on partners (``gateway.xca.initiating``). Answers are read as
a stream: plain SOAP under a size cap, MTOM with ``gateway.soap.mtom.read_multipart``
(attachments spooled to disk, hashed as they arrive).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from lxml import etree

from gateway.partners.model import Partner
from gateway.soap import mtom
from gateway.soap.addressing import ANONYMOUS
from gateway.soap.envelope import SoapVersion, build_envelope
from gateway.transport import (
    HttpRequest,
    HttpResponse,
    OutboundError,
    PartnerBadAnswer,
    PartnerFault,
    PartnerTimeout,
    PartnerUnreachable,
    Transport,
)
from profiles.errors import WSA_NS, SoapFault
from profiles.transaction import Attachment, OutgoingAttachment
from profiles.xml import parse_xml

log = logging.getLogger("gateway.client")
SOAP12 = SoapVersion.SOAP12.value


@dataclass
class SoapAnswer:
    """A partner's SOAP answer: the body's first element and any MTOM attachments.

    ``close()`` deletes spooled attachments; call it once they have been consumed.
    """

    body: etree._Element
    action: str | None
    relates_to: str | None
    attachments: dict[str, Attachment] = field(default_factory=dict)
    elapsed: float = 0.0
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


# Builds the wsse:Security header for (partner, endpoint, principal); None: send none.
SecurityHeader = Callable[[Partner, str, Any], etree._Element | None]


class _Deadline:
    """A stream that raises PartnerTimeout once the call's time is spent."""

    def __init__(self, stream: BinaryIO, deadline: float) -> None:
        self.stream, self.deadline = stream, deadline

    def read(self, n: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise PartnerTimeout("the answer did not complete in time")
        return self.stream.read(n)


@dataclass(frozen=True)
class Prepared:
    """A request built (and signed) ahead of sending; single use (an MTOM payload is a
    generator)."""

    partner: Partner
    url: str
    message_id: str
    headers: dict[str, str]
    payload: bytes | Iterable[bytes]
    expect_action: str | None = None


@dataclass
class Received:
    """An answer read off the wire, not yet parsed; ``close()`` deletes its spool files."""

    prepared: Prepared
    status: int
    media: str
    root: bytes
    attachments: dict[str, Attachment]
    closers: list[Callable[[], None]]
    elapsed: float = 0.0

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


class OutboundClient:
    """Sends one SOAP 1.2 request to a partner and reads its answer (plain or MTOM)."""

    def __init__(
        self,
        transport: Transport,
        *,
        security: SecurityHeader | None = None,
        max_message_bytes: int = 50 * 1024 * 1024,
        max_attachment_bytes: int = 2 * 1024 * 1024 * 1024,
        spool_dir: str | None = None,
    ) -> None:
        self.transport = transport
        self.security = security
        self.max_message_bytes = max_message_bytes
        self.max_attachment_bytes = max_attachment_bytes
        self.spool_dir = spool_dir

    def envelope(
        self, partner: Partner, url: str, action: str, body: etree._Element,
        principal: Any = None,
    ) -> tuple[etree._Element, str]:
        """The request envelope (WS-Addressing, optional wsse:Security) and its MessageID."""
        message_id = f"urn:uuid:{uuid.uuid4()}"
        headers = []
        for name, text in (("Action", action), ("MessageID", message_id), ("To", url)):
            el = etree.Element(f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS})
            el.text = text
            if name in ("Action", "To"):
                el.set(f"{{{SOAP12}}}mustUnderstand", "true")
            headers.append(el)
        reply_to = etree.Element(f"{{{WSA_NS}}}ReplyTo", nsmap={"wsa": WSA_NS})
        etree.SubElement(reply_to, f"{{{WSA_NS}}}Address").text = ANONYMOUS
        headers.insert(2, reply_to)
        if self.security is not None:
            security = self.security(partner, url, principal)
            if security is not None:
                headers.append(security)
        if partner.quirks.namespace_placement == "envelope":
            # Declared on the Envelope, lxml drops the payload's now redundant declarations.
            nsmap = {**_payload_namespaces(body), "env": SOAP12}
            env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap=nsmap)
            header = etree.SubElement(env, f"{{{SOAP12}}}Header")
            header.extend(headers)
            etree.SubElement(env, f"{{{SOAP12}}}Body").append(body)
        else:
            env = build_envelope(SoapVersion.SOAP12, body, headers)
        return env, message_id

    def prepare(
        self,
        partner: Partner,
        transaction: str,
        action: str,
        body: etree._Element,
        *,
        attachments: Sequence[OutgoingAttachment] = (),
        mtom_request: bool = False,
        expect_action: str | None = None,
        principal: Any = None,
    ) -> Prepared:
        """The request's envelope, security header and bytes, ready for ``send``."""
        url = partner.endpoint(transaction)
        if not url:
            raise PartnerUnreachable(f"{partner.home_community_id} has no {transaction} endpoint")
        env, message_id = self.envelope(partner, url, action, body, principal)
        xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        payload: bytes | Iterable[bytes]
        if mtom_request or attachments:
            content_type, payload = mtom.write_multipart(
                xml, attachments, soap_media_type="application/soap+xml", action=action
            )
        else:
            content_type = f'application/soap+xml; charset=UTF-8; action="{action}"'
            payload = xml
        headers = {"Content-Type": content_type, "Accept-Encoding": "gzip, deflate"}
        return Prepared(partner, url, message_id, headers, payload, expect_action)

    def send(self, prepared: Prepared, *, timeout: float | None = None) -> SoapAnswer:
        """Send a prepared request; the answer within ``timeout`` (at most the partner's)."""
        return self.answer(self.receive(prepared, timeout=timeout))

    def receive(self, prepared: Prepared, *, timeout: float | None = None) -> Received:
        """The I/O half of ``send``: the request out, the answer's bytes in, unparsed."""
        partner = prepared.partner
        timeout = min(timeout, partner.timeout_seconds) if timeout else partner.timeout_seconds
        started = time.monotonic()
        request = HttpRequest(partner, prepared.url, prepared.headers, prepared.payload, timeout)
        resp = self.transport.send(request)
        try:
            received = self._read(resp, started + timeout, prepared)
        finally:
            resp.close()
        received.elapsed = time.monotonic() - started
        return received

    def answer(self, received: Received) -> SoapAnswer:
        """The CPU half of ``send``: parse and check what ``receive`` read."""
        try:
            answer = _soap_answer(received.status, received.media, received.root,
                                  received.attachments, received.closers)
        except BaseException:
            received.close()
            raise
        answer.elapsed = received.elapsed
        prepared = received.prepared
        expect = prepared.expect_action
        if expect and answer.action and answer.action != expect:
            answer.close()
            raise PartnerBadAnswer(f"answer action {answer.action!r}, expected {expect}")
        if answer.relates_to and answer.relates_to != prepared.message_id:
            log.warning("answer relates to another message",
                        extra={"partner": prepared.partner.home_community_id})
        return answer

    def call(
        self,
        partner: Partner,
        transaction: str,
        action: str,
        body: etree._Element,
        *,
        attachments: Sequence[OutgoingAttachment] = (),
        mtom_request: bool = False,
        timeout: float | None = None,
        expect_action: str | None = None,
        principal: Any = None,
    ) -> SoapAnswer:
        prepared = self.prepare(partner, transaction, action, body, attachments=attachments,
                                mtom_request=mtom_request, expect_action=expect_action,
                                principal=principal)
        return self.send(prepared, timeout=timeout)

    def _read(self, resp: HttpResponse, deadline: float, prepared: Prepared) -> Received:
        stream = _Deadline(resp.stream, deadline)
        content_type = resp.headers.get("content-type", "")
        media, _ = mtom.parse_content_type(content_type)
        answer_closers: list[Callable[[], None]] = []
        attachments: dict[str, Attachment] = {}
        try:
            if mtom.is_multipart(media):
                message = mtom.read_multipart(
                    stream, content_type,
                    max_root_bytes=self.max_message_bytes,
                    max_attachment_bytes=self.max_attachment_bytes,
                    spool_dir=self.spool_dir,
                )
                answer_closers.append(message.close)
                root, attachments = message.root, message.attachments
            else:
                chunks, size = [], 0
                while chunk := stream.read(mtom.CHUNK):  # the deadline is checked per chunk
                    size += len(chunk)
                    if size > self.max_message_bytes:
                        raise PartnerBadAnswer("the answer exceeds the size limit")
                    chunks.append(chunk)
                # one copy at most (a fan-out reads 500 answers, their bytes in one GIL)
                root = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except SoapFault as fault:
            raise PartnerBadAnswer(f"unreadable answer: {fault.reason}") from None
        except OutboundError:
            raise
        except Exception as exc:  # a connection dropped mid-body, a decoding error...
            if "timed out" in str(exc).lower():
                raise PartnerTimeout("the answer did not complete in time") from None
            raise PartnerUnreachable(f"the answer broke off: {type(exc).__name__}") from None
        return Received(prepared, resp.status, media, root, attachments, answer_closers)


def _soap_answer(status, media, root, attachments, closers) -> SoapAnswer:
    if media not in ("application/soap+xml", "text/xml", "multipart/related"):
        raise PartnerBadAnswer(f"HTTP {status} with content type {media or 'none'!r}")
    try:
        env = parse_xml(root)
    except SoapFault:
        raise PartnerBadAnswer(f"HTTP {status}: the answer is not well-formed XML") from None
    qn = etree.QName(env)
    if qn.localname != "Envelope" or qn.namespace not in (SOAP12, SoapVersion.SOAP11.value):
        raise PartnerBadAnswer(f"HTTP {status}: the answer is not a SOAP envelope")
    ns = qn.namespace
    header = env.find(f"{{{ns}}}Header")
    body = env.find(f"{{{ns}}}Body")
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    if first is None:
        raise PartnerBadAnswer(f"HTTP {status}: the SOAP Body is empty")
    if etree.QName(first).localname == "Fault":
        raise _fault(first, ns)
    if status != 200:
        raise PartnerBadAnswer(f"HTTP {status} without a SOAP fault")

    def wsa(name: str) -> str | None:
        if header is None:
            return None
        text = header.findtext(f"{{{WSA_NS}}}{name}")
        return text.strip() if text else None

    return SoapAnswer(first, wsa("Action"), wsa("RelatesTo"), attachments, 0.0, closers)


def _fault(fault: etree._Element, ns: str) -> PartnerFault:
    if ns == SOAP12:
        code = (fault.findtext(f"{{{ns}}}Code/{{{ns}}}Value") or "").strip()
        subcodes = [v.strip() for v in fault.xpath(".//*[local-name()='Subcode']/*"
                                                   "[local-name()='Value']/text()")]
        reason = (fault.findtext(f"{{{ns}}}Reason/{{{ns}}}Text") or "").strip()
    else:
        code = (fault.findtext("faultcode") or "").strip()
        subcodes = []
        reason = (fault.findtext("faultstring") or "").strip()
    reason = " ".join(reason.split())[:200]
    return PartnerFault(f"SOAP fault {code}: {reason}".strip(), code, subcodes)


def _payload_namespaces(body: etree._Element) -> dict[str, str]:
    """Every prefixed namespace the payload declares (for Envelope-level placement)."""
    return {p: u for el in body.iter() if isinstance(el.tag, str)
            for p, u in el.nsmap.items() if p}

