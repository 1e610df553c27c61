"""MLLP listener: HL7 v2 over TCP (and TLS) for the PIX Manager (ITI-8, ITI-9).

Each message travels framed as ``<VT> message <FS><CR>`` (HL7 MLLP release 1);
a connection carries any number of messages, each answered before the next is
read, so answers keep their order. The answer comes from a plain function
(``profiles.pix.manager.respond`` bound to the index) run in a worker thread,
since the index is synchronous; the event loop only moves bytes.

Security, as on the HTTPS side: with an ``ssl.SSLContext`` from
``server_tls_context`` the listener speaks TLS 1.2+ and refuses a client that
shows no certificate signed by the trust store (ITI-19). A frame larger than
``max_message_bytes``, a connection idle for ``idle_timeout`` seconds between
messages, or a frame not complete ``read_timeout`` seconds after it started is
closed; bytes before a frame's start are dropped, as MLLP receivers do.

``close`` stops accepting, drops idle connections and gives those answering a
message ``grace`` seconds to send the answer; ``rebind`` swaps the TLS context
(new certificate or trust store) for new connections while the open ones go on.
``ihe-gateway serve`` runs this listener in a child process (gateway.mllp_service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway.mllp")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of an MLLP connection (for the audit trail)."""

    host: str | None = None
    subject: str | None = None  # the verified client certificate's subject (TLS)


# Set per connection (each runs in its own task, so its own context); ``respond`` runs
# in a thread started with ``asyncio.to_thread``, which carries the context along.
current_peer: ContextVar[Peer | None] = ContextVar("mllp_peer", default=None)


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK


async def read_frame(reader: asyncio.StreamReader, *, idle_timeout: float | None = None,
                     read_timeout: float | None = None) -> bytes | None:
    """The next framed message, or None when the peer closed the connection. Waits
    ``idle_timeout`` for a frame to start and ``read_timeout`` for it to end (TimeoutError)."""
    try:
        await asyncio.wait_for(reader.readuntil(START_BLOCK), idle_timeout)
        data = await asyncio.wait_for(reader.readuntil(END_BLOCK), read_timeout)
    except asyncio.IncompleteReadError:
        return None
    start = data.rfind(START_BLOCK)
    return data[start + 1:-len(END_BLOCK)] if start >= 0 else data[:-len(END_BLOCK)]


def server_tls_context(certificate: Path, private_key: Path, trust_store: Path
                       ) -> ssl.SSLContext:
    """Mutual TLS: our certificate, and clients must present one the trust store signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(trust_store))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificate), str(private_key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class MllpServer:
    """Serve ``respond`` (message bytes -> answer bytes) on ``host:port`` (0: any free port)."""

    def __init__(self, respond: Callable[[bytes], bytes], *, host: str = "127.0.0.1",
                 port: int = 2575, tls: ssl.SSLContext | None = None,
                 max_message_bytes: int = 1024 * 1024, idle_timeout: float = 300.0,
                 read_timeout: float | None = 60.0) -> None:
        self.respond, self.host, self.port, self.tls = respond, host, port, tls
        self.max_message_bytes, self.idle_timeout = max_message_bytes, idle_timeout
        self.read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._busy: dict[asyncio.Task, bool] = {}  # connection -> answering a message now
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, ssl=self.tls,
            limit=self.max_message_bytes + len(END_BLOCK) + 1)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mllp listening", extra={"host": self.host, "port": self.port,
                                          "tls": self.tls is not None})

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def rebind(self, *, tls: ssl.SSLContext | None, host: str | None = None,
                     port: int | None = None) -> None:
        """Listen again with ``tls`` (and maybe a new address); open connections carry on.
        On the same address the old socket closes first (refusals for a moment), on a new
        one it closes once the new one listens. If the new one cannot listen, the old
        settings are restored and the error raised."""
        old = (self._server, self.tls, self.host, self.port)
        new_host, new_port = host or self.host, port if port is not None else self.port
        moving = (new_host, new_port) != (self.host, self.port)
        if old[0] is not None and not moving:
            old[0].close()
        self.tls, self.host, self.port = tls, new_host, new_port
        try:
            await self.start()
        except OSError:
            self._server, self.tls, self.host, self.port = old
            if old[0] is not None and not moving:
                await self.start()
            raise
        if old[0] is not None and moving:
            old[0].close()

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting; idle connections end now, busy ones after their answer."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._busy.items()):
            if not busy:
                task.cancel()
        if pending := list(self._busy):
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        current_peer.set(_peer(peer, writer.get_extra_info("peercert")))
        task = asyncio.current_task()
        assert task is not None
        self._busy[task] = False
        try:
            while not self._closing:
                self._busy[task] = False
                message = await read_frame(reader, idle_timeout=self.idle_timeout,
                                           read_timeout=self.read_timeout)
                if message is None:
                    break
                self._busy[task] = True
                answer = await asyncio.to_thread(self.respond, message)
                writer.write(frame(answer))
                await writer.drain()
        except (asyncio.LimitOverrunError, ValueError):
            log.warning("mllp frame too large; connection closed", extra={"peer": str(peer)})
        except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # idle, reset, a failed handshake or the server closing: nothing to answer
        except Exception:
            log.exception("mllp connection failed", extra={"peer": str(peer)})
        finally:
            self._busy.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
                await writer.wait_closed()


def _peer(address: Any, certificate: Any) -> Peer:
    host = address[0] if isinstance(address, tuple) and address else None
    subject = None
    if certificate:
        subject = ",".join(f"{k}={v}" for rdn in certificate.get("subject", ()) for k, v in rdn)
    return Peer(host, subject or None)


def pix_manager(index, auditor: Any = None, *, endpoint: str = "mllp"
                ) -> Callable[[bytes], bytes]:
    """The PIX Manager's answer function over ``index`` (a ``PatientIndex``).

    With ``auditor`` (``gateway.audit.Auditor``) every message is audited as the SOAP
    requests are: the ITI-8 feed's Patient Record events or the ITI-9 query record, a
    security alert for a message that is neither. A feed's records commit with its data;
    a query's, and an alert, once the answer is built.
    ``endpoint`` names the listener in records whose receiving application is unknown.
    """
    from profiles.pix.manager import respond

    if auditor is None:
        return lambda message: respond(message, index)

    from gateway.audit.hook import RequestFacts

    def audited(message: bytes) -> bytes:
        peer = current_peer.get() or Peer()
        audit = auditor.request(RequestFacts(uuid.uuid4().hex, endpoint, peer.host,
                                             peer.subject))
        try:
            with audit.serving():  # a feed's record commits with the index change it made
                return respond(message, index, audit=audit)
        finally:
            audit.finish(transaction=None, outcome=None)

    return audited
