"""The outbound HTTP transport and its error tree: how a request reaches a partner.

    Transport.send(HttpRequest) -> HttpResponse   (a stream; raises OutboundError)

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

Swappable (like httpx's MockTransport): ``RequestsTransport`` does real HTTPS with one
pooled session per partner; ``MockTransport(handler)`` answers in process, so fan-out
logic is tested against fake peers. ``gateway.client`` speaks SOAP over either.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import requests

from gateway.partners.model import Partner


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
