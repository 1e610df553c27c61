"""Syslog transports for ITI-20: RFC 5425 (TLS) and RFC 5426 (UDP), plus TLS contexts.

Syslog has no acknowledgement, so over TLS a batch counts as delivered only
when the repository has read all of it: after the last frame we send TLS
close_notify and wait for the repository to close its side. A repository that
read everything closes cleanly (our own does, after storing); one that crashed
resets the connection, and the batch is retried. A repository that stays open
without closing is alive and has taken the bytes, so after ``confirm_timeout``
the batch is taken as delivered too. Retries may deliver a record twice; the
repository de-duplicates by record id.

UDP (RFC 5426) is best effort by design: a datagram is never truncated
(``DatagramTooLarge``), and a refused port (ICMP) stops the batch so the rest
is retried, but a datagram lost on the way is lost.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.config import Tls
from profiles.atna.syslog import UDP_MAX_IPV4, DatagramTooLarge, datagram, frame

SEND_CHUNK = 256 * 1024
STRONG_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM"

TlsContextFactory = Callable[[], ssl.SSLContext]


def client_context(tls: Tls) -> ssl.SSLContext:
    """Our certificate as client certificate; the repository verified against the trust store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(STRONG_CIPHERS)
    ctx.load_verify_locations(cafile=str(tls.trust_store))
    ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    return ctx


def server_context(tls: Tls) -> ssl.SSLContext:
    """The repository's side: a client certificate is required and must chain to the trust store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(STRONG_CIPHERS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(tls.trust_store))
    ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    return ctx


class DeliveryError(Exception):
    """A batch was not (or not surely) delivered; the text names no record and no patient."""


@dataclass
class DeliveryResult:
    """``sent`` leading messages went out; ``refused`` indexes can never go to this destination."""

    sent: int
    refused: list[int] = field(default_factory=list)
    error: str | None = None


def describe(exc: BaseException) -> str:
    """A short, PHI-free description of a network error for logs and the outbox."""
    text = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    detail = getattr(exc, "verify_message", None)  # why a certificate was not trusted
    return f"{type(exc).__name__}: {text}{f' ({detail})' if detail else ''}"[:200]


def error_kind(exc: BaseException) -> str:
    """The kind of a (database) error without its message: SQLAlchemy messages quote the
    statement's parameters, which here are audit records full of patient ids."""
    orig = getattr(exc, "orig", None)
    return type(exc).__name__ + (f" ({type(orig).__name__})" if orig is not None else "")


class TlsTransport:
    """RFC 5425: octet-counted frames over TLS, one connection per batch."""

    def __init__(
        self,
        host: str,
        port: int,
        context_factory: TlsContextFactory,
        *,
        timeout: float = 10.0,
        confirm_timeout: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self.context_factory = context_factory
        self.timeout, self.confirm_timeout = timeout, confirm_timeout
        self._context: ssl.SSLContext | None = None

    def _ctx(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.context_factory()
        return self._context

    def deliver(self, messages: Sequence[bytes]) -> DeliveryResult:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            return DeliveryResult(0, error=describe(exc))
        try:
            with self._ctx().wrap_socket(raw, server_hostname=self.host) as tls:
                self._send(tls, messages)
                self._confirm(tls)
        except ssl.SSLCertVerificationError as exc:
            self._context = None  # a renewed trust store or certificate is read next time
            return DeliveryResult(0, error=describe(exc))
        except (OSError, DeliveryError) as exc:
            return DeliveryResult(0, error=describe(exc))
        finally:
            raw.close()
        return DeliveryResult(len(messages))

    @staticmethod
    def _send(tls: ssl.SSLSocket, messages: Sequence[bytes]) -> None:
        chunk: list[bytes] = []
        size = 0
        for message in messages:
            framed = frame(message)
            chunk.append(framed)
            size += len(framed)
            if size >= SEND_CHUNK:
                tls.sendall(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            tls.sendall(b"".join(chunk))

    def _confirm(self, tls: ssl.SSLSocket) -> None:
        """close_notify, then wait for the repository to close: it has read everything."""
        tls.settimeout(self.confirm_timeout)
        try:
            tls.unwrap()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return  # closed (FIN) without its own close_notify: it read to our end and left
        except TimeoutError:
            return  # alive, holding the connection open: the bytes are with it
        except (ConnectionResetError, BrokenPipeError) as exc:
            # A reset means unread data was thrown away (or the peer died): not delivered.
            raise DeliveryError("repository reset the connection before reading the batch") from exc


class UdpTransport:
    """RFC 5426: one message per datagram, never truncated."""

    def __init__(self, host: str, port: int, *, max_datagram: int = UDP_MAX_IPV4) -> None:
        self.host, self.port = host, port
        self.max_datagram = max_datagram

    def deliver(self, messages: Sequence[bytes]) -> DeliveryResult:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            return DeliveryResult(0, error=describe(exc))
        result = DeliveryResult(0)
        try:
            sock.connect(address)  # connected: an ICMP port-unreachable surfaces as an error
            for i, message in enumerate(messages):
                try:
                    sock.send(datagram(message, max_size=self.max_datagram))
                except DatagramTooLarge:
                    result.refused.append(i)
                result.sent = i + 1
        except OSError as exc:
            result.error = describe(exc)
        finally:
            sock.close()
        return result
