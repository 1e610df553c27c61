"""The outbound SOAP client: SOAP 1.2 over mutual TLS to partner communities.

    OutboundClient.call(partner, transaction, action, body) -> SoapAnswer
        raises one of (every failure a value the fan-out turns into a RegistryError):

    OutboundError           a partner could not give us a usable answer
     +-- PartnerUnreachable connection refused, DNS, TLS handshake refused (TlsRefused)
     +-- PartnerTimeout     no complete answer within the call's time
     +-- PartnerFault       the partner answered a SOAP fault
     +-- PartnerBadAnswer   HTTP error without a fault, not SOAP, malformed MTOM/XML

Trust: each partner's server certificate must chain to *its* registered CA, with
SNI and host name checked. This machine sets REQUESTS_CA_BUNDLE, which requests
lets override a Session's ``verify``; so the session has ``trust_env = False`` and
``verify=<partner CA>`` is passed on every request as well. A partner without a CA
is refused, never verified against a default bundle.

The transport is swappable (``Transport``: ``send(HttpRequest) -> HttpResponse``):
``RequestsTransport`` does real HTTPS; ``MockTransport(handler)`` answers in process,
so fan-out logic is tested against fake peers. Answers are read as a stream: plain
SOAP under a size cap, MTOM with ``gateway.soap.mtom.read_multipart`` (attachments
spooled to disk, hashed while they arrive).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import requests
from lxml import etree

from gateway.partners.model import Partner
from gateway.soap import mtom
from gateway.soap.addressing import ANONYMOUS
from gateway.soap.envelope import SoapVersion, build_envelope
from profiles.errors import WSA_NS, SoapFault
from profiles.transaction import Attachment, OutgoingAttachment
from profiles.xml import parse_xml

log = logging.getLogger("gateway.client")
SOAP12 = SoapVersion.SOAP12.value


class OutboundError(Exception):
    """A partner gave no usable answer; ``reason`` is safe to put in a RegistryError."""

    kind = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartnerUnreachable(OutboundError):
    kind = "unreachable"


class TlsRefused(PartnerUnreachable):
    kind = "tls"


class PartnerTimeout(OutboundError):
    kind = "timeout"


class PartnerFault(OutboundError):
    kind = "fault"

    def __init__(self, reason: str, code: str = "", subcodes: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.code, self.subcodes = code, tuple(subcodes)


class PartnerBadAnswer(OutboundError):
    kind = "bad-answer"


# -- transport ------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    partner: Partner
    url: str
    headers: Mapping[str, str]
    body: bytes | Iterable[bytes]
    timeout: float  # seconds for connecting and for each read


@dataclass
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    stream: BinaryIO
    close: Callable[[], None] = lambda: None


class Transport(Protocol):
    def send(self, request: HttpRequest) -> HttpResponse: ...


@dataclass(frozen=True)
class ClientCertificate:
    """Our gateway's TLS client certificate (chain PEM) and key file."""

    certificate: Path
    private_key: Path


class RequestsTransport:
    """Real HTTPS with requests: one pooled Session per partner, mutual TLS, partner CA only."""

    def __init__(self, client_certificate: ClientCertificate | None, *, pool_size: int = 4):
        self.cert = (
            (str(client_certificate.certificate), str(client_certificate.private_key))
            if client_certificate
            else None
        )
        self.pool_size = pool_size
        self._sessions: dict[str, requests.Session] = {}
        self._ca_files: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._ca_dir = tempfile.TemporaryDirectory(prefix="ihe-gateway-ca-")

    def _ca_file(self, partner: Partner) -> str:
        if not partner.ca_pem:
            raise TlsRefused(f"no CA is registered for {partner.home_community_id}")
        digest = hashlib.sha256(partner.ca_pem).digest()
        with self._lock:
            path = self._ca_files.get(digest)
            if path is None:
                target = Path(self._ca_dir.name) / f"{digest.hex()[:32]}.pem"
                target.write_bytes(partner.ca_pem)
                path = self._ca_files[digest] = str(target)
            return path

    def _session(self, partner: Partner) -> requests.Session:
        with self._lock:
            session = self._sessions.get(partner.home_community_id)
            if session is None:
                session = requests.Session()
                session.trust_env = False  # REQUESTS_CA_BUNDLE, .netrc and proxies ignored
                adapter = requests.adapters.HTTPAdapter(
                    pool_connections=1, pool_maxsize=self.pool_size, max_retries=0
                )
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._sessions[partner.home_community_id] = session
            return session

    def send(self, request: HttpRequest) -> HttpResponse:
        ca = self._ca_file(request.partner)
        session = self._session(request.partner)
        session.verify = ca
        try:
            resp = session.post(
                request.url,
                data=request.body,
                headers=dict(request.headers),
                timeout=(request.timeout, request.timeout),
                verify=ca,  # on every call too: never the environment's bundle
                cert=self.cert,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise TlsRefused(f"TLS handshake refused: {_tls_reason(exc)}") from None
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
            raise PartnerTimeout(f"no answer within {request.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise PartnerUnreachable(f"connection failed: {_connection_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise PartnerUnreachable(f"request failed: {type(exc).__name__}") from None
        resp.raw.decode_content = True
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return HttpResponse(resp.status_code, headers, resp.raw, resp.close)

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
        self._ca_dir.cleanup()


class MockTransport:
    """Answers in process: ``handler(HttpRequest) -> HttpResponse`` (or raises OutboundError)."""

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse]) -> None:
        self.handler = handler

    def send(self, request: HttpRequest) -> HttpResponse:
        return self.handler(request)


def response(status: int, content_type: str, body: bytes) -> HttpResponse:
    """An in-memory HttpResponse (for MockTransport handlers)."""
    return HttpResponse(status, {"content-type": content_type}, io.BytesIO(body))


# -- the SOAP client ----------------------------------------------------------------


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
        url = partner.endpoint(transaction)
        if not url:
            raise PartnerUnreachable(f"{partner.home_community_id} has no {transaction} endpoint")
        timeout = min(timeout, partner.timeout_seconds) if timeout else partner.timeout_seconds
        started = time.monotonic()
        deadline = started + timeout
        env, message_id = self.envelope(partner, url, action, body, principal)
        xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        if mtom_request or attachments:
            content_type, payload = mtom.write_multipart(
                xml, attachments, soap_media_type="application/soap+xml", action=action
            )
        else:
            content_type = f'application/soap+xml; charset=UTF-8; action="{action}"'
            payload = xml
        request = HttpRequest(
            partner, url, {"Content-Type": content_type, "Accept-Encoding": "gzip, deflate"},
            payload, timeout,
        )
        resp = self.transport.send(request)
        try:
            answer = self._read(resp, deadline)
        finally:
            resp.close()
        answer.elapsed = time.monotonic() - started
        if expect_action and answer.action and answer.action != expect_action:
            answer.close()
            raise PartnerBadAnswer(f"answer action {answer.action!r}, expected {expect_action}")
        if answer.relates_to and answer.relates_to != message_id:
            log.warning("answer relates to another message",
                        extra={"partner": partner.home_community_id})
        return answer

    def _read(self, resp: HttpResponse, deadline: float) -> SoapAnswer:
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
                buf = bytearray()
                while chunk := stream.read(mtom.CHUNK):  # the deadline is checked per chunk
                    buf += chunk
                    if len(buf) > self.max_message_bytes:
                        raise PartnerBadAnswer("the answer exceeds the size limit")
                root = bytes(buf)
        except SoapFault as fault:
            raise PartnerBadAnswer(f"unreadable answer: {fault.reason}") from None
        except OutboundError:
            raise
        except Exception as exc:  # a connection dropped mid-body, a decoding error...
            if "timed out" in str(exc).lower():
                raise PartnerTimeout("the answer did not complete in time") from None
            raise PartnerUnreachable(f"the answer broke off: {type(exc).__name__}") from None
        try:
            return _soap_answer(resp.status, media, root, attachments, answer_closers)
        except BaseException:
            for close in answer_closers:
                close()
            raise


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


def _tls_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "Hostname mismatch", "hostname",
                   "certificate verify failed", "TLSV1_ALERT", "SSLV3_ALERT", "WRONG_VERSION"):
        i = text.find(marker)
        if i >= 0:
            return text[i:i + 120].split("'")[0].split('"')[0].rstrip(" ()")
    return _first_line(exc)


def _connection_reason(exc: BaseException) -> str:
    """The OS's reason ("[Errno 111] Connection refused") inside urllib3's long message."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return found.group(0).strip() if found else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def default_transport(config: Any) -> RequestsTransport:
    """The real transport with the gateway's own certificate as client certificate."""
    tls = getattr(config, "tls", None)
    cert = ClientCertificate(tls.certificate, tls.private_key) if tls is not None else None
    return RequestsTransport(cert)
