"""The audit record repository: receives ITI-20 over TLS and UDP, validates, stores.

* TLS (RFC 5425): the client must present a certificate that chains to the
  trust store (``transport.server_context``); a client without one fails the
  handshake. Frames are read with ``FrameDecoder``; a broken frame closes the
  connection, since octet counting cannot resynchronise.
* UDP (RFC 5426): one message per datagram.
* Each message is parsed (RFC 5424), its XML read with the hardened parser and
  validated against the DICOM audit schema (``wsdl.schema("atna")``); an
  invalid message is refused and counted, the connection goes on.
* Records go into ``audit_records`` with ``origin = "received"`` and the
  sender's address and certificate subject; ``record_id`` (SHA-256 of the XML)
  makes a retried record a duplicate, stored once.

A TLS connection's records are committed before the next read, and the
repository closes its side only after storing everything it read: the sender
takes that close as the acknowledgement syslog lacks (``transport.py``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa
from lxml import etree

from gateway.audit.models import ORIGIN_RECEIVED, AuditEntry
from gateway.audit.queue import record_row, store_records
from gateway.audit.transport import describe, error_kind
from gateway.store.db import Database
from profiles.atna.message import AuditError
from profiles.atna.record import AuditRecord, received_record
from profiles.atna.syslog import MAX_FRAME, FrameDecoder, FrameError, SyslogMessage

log = logging.getLogger("gateway.audit.repository")

READ_CAP = 512 * 1024  # bytes gathered from one connection before storing them
UDP_BATCH = 500


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees the batch was not taken."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass(frozen=True)
class Peer:
    address: str
    subject: str | None = None


def certificate_subject(tls: ssl.SSLSocket) -> str | None:
    cert = tls.getpeercert()
    if not cert:
        return None
    return ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)


class AuditRepository:
    """A syslog server storing audit records; ``start()`` binds, ``stop()`` closes.

    ``tls_port`` / ``udp_port`` of 0 pick a free port (see ``tls_address`` /
    ``udp_address``); None leaves that transport off. ``stats`` counts what
    happened (connections, refused handshakes, frames, stored, duplicates,
    invalid, broken frames) without naming anyone.
    """

    def __init__(
        self,
        database: Database,
        *,
        host: str = "0.0.0.0",
        tls_port: int | None = None,
        udp_port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        schema: etree.XMLSchema | None = None,
        max_frame: int = MAX_FRAME,
        max_connections: int = 64,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 120.0,
    ) -> None:
        if tls_port is not None and tls_context is None:
            raise ValueError("the TLS listener needs a server TLS context")
        self.database = database
        self.host, self.tls_port, self.udp_port = host, tls_port, udp_port
        self.tls_context, self.schema = tls_context, schema
        self.max_frame = max_frame
        self.handshake_timeout, self.idle_timeout = handshake_timeout, idle_timeout
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._tls_listener: socket.socket | None = None
        self._udp: socket.socket | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        if self.tls_port is not None:
            self._tls_listener = socket.create_server(
                (self.host, self.tls_port), backlog=128, reuse_port=False
            )
            self._tls_listener.settimeout(0.5)
            self._spawn(self._accept_loop, "audit-repo-tls")
        if self.udp_port is not None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._udp = socket.socket(family, socket.SOCK_DGRAM)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self._udp.bind((self.host, self.udp_port))
            self._udp.settimeout(0.5)
            self._spawn(self._udp_loop, "audit-repo-udp")

    @property
    def tls_address(self) -> tuple[str, int] | None:
        return None if self._tls_listener is None else self._tls_listener.getsockname()[:2]

    @property
    def udp_address(self) -> tuple[str, int] | None:
        return None if self._udp is None else self._udp.getsockname()[:2]

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for t in list(self._threads):
            t.join(timeout)
        for sock in (self._tls_listener, self._udp):
            if sock is not None:
                sock.close()
        self._tls_listener = self._udp = None
        self._threads.clear()

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler); then call ``stop``."""
        self._stop.set()

    def wait(self) -> None:
        """Block until ``request_stop`` (or ``stop``); the CLI's main loop."""
        while not self._stop.wait(1.0):
            pass

    def _spawn(self, target, name: str, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _count(self, **increments: int) -> None:
        with self._lock:
            self.stats.update(increments)

    # -- storing --------------------------------------------------------------------------

    def accept(self, frames: list[bytes], peer: Peer) -> int:
        """Validate and store messages from one peer; returns how many were new."""
        good: list[tuple[AuditRecord, dict]] = []
        invalid = 0
        for data in frames:
            try:
                with self._schema_lock:  # a compiled XMLSchema is not thread-safe
                    message, record = received_record(data, schema=self.schema)
            except AuditError as exc:
                invalid += 1
                # The reason may quote values from the record (patient ids): kind only.
                log.debug("refused audit message from %s: %s", peer.address, type(exc).__name__)
                continue
            good.append((record, self._row(record, message, peer)))
        if invalid:
            log.warning(
                "audit repository refused %d invalid message(s) from %s", invalid, peer.address
            )
        new = self._store(good) if good else 0
        self._count(frames=len(frames), invalid=invalid, stored=new, duplicates=len(good) - new)
        return new

    @staticmethod
    def _row(record: AuditRecord, message: SyslogMessage, peer: Peer) -> dict:
        return record_row(
            record,
            origin=ORIGIN_RECEIVED,
            peer_address=peer.address,
            peer_subject=peer.subject,
            syslog_hostname=message.hostname,
            syslog_app_name=message.app_name,
        )

    def _store(self, good: list[tuple[AuditRecord, dict]]) -> int:
        unique = {rec.record_id: (rec, row) for rec, row in good}
        with self.database.session(immediate=True) as session:
            known = set(
                session.scalars(
                    sa.select(AuditEntry.record_id).where(AuditEntry.record_id.in_(list(unique)))
                )
            )
            fresh = [v for k, v in unique.items() if k not in known]
            store_records(session, fresh)
        return len(fresh)

    # -- TLS ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._tls_listener is not None
        while not self._stop.is_set():
            try:
                raw, addr = self._tls_listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.exception("audit repository: accept failed")
                continue
            if not self._slots.acquire(blocking=False):
                self._count(connections_over_limit=1)
                log.warning("audit repository: connection limit reached; closing %s", addr[0])
                raw.close()
                continue
            self._spawn(self._serve_tls, "audit-repo-conn", raw, addr[0])

    def _serve_tls(self, raw: socket.socket, address: str) -> None:
        conn: socket.socket = raw
        self._track(conn)
        try:
            raw.settimeout(self.handshake_timeout)
            try:
                conn = self.tls_context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self._count(refused_handshakes=1)
                log.warning(
                    "audit repository refused a TLS client at %s: %s", address, describe(exc)
                )
                return
            self._track(conn, replaces=raw)
            self._count(connections=1)
            self._read_frames(conn, Peer(address, certificate_subject(conn)))
        finally:
            self._track(None, replaces=conn)
            conn.close()
            self._slots.release()

    def _track(self, sock: socket.socket | None, replaces: socket.socket | None = None) -> None:
        with self._lock:
            self._open.discard(replaces)
            if sock is not None:
                self._open.add(sock)

    def _read_frames(self, tls: ssl.SSLSocket, peer: Peer) -> None:
        decoder = FrameDecoder(max_frame=self.max_frame)
        tls.settimeout(self.idle_timeout)
        try:
            while True:
                data = self._read_some(tls)
                if not data:
                    decoder.close()
                    break
                frames = decoder.feed(data)
                if frames:
                    self.accept(frames, peer)
                    decoder.feed(b"")  # a broken frame after good ones is raised now
        except FrameError as exc:
            self._count(broken_frames=1)
            log.warning("audit repository closed a connection from %s: %s", peer.address, exc)
            return
        except (OSError, ssl.SSLError) as exc:
            if not self._stop.is_set():
                log.info("audit connection from %s ended: %s", peer.address, describe(exc))
            return
        except Exception as exc:  # noqa: BLE001
            # Not stored (the database is down?): reset, so the sender retries the batch.
            log.error(
                "audit repository could not store records from %s: %s",
                peer.address,
                error_kind(exc),
            )
            _reset(tls)
            return
        with contextlib.suppress(OSError):  # ssl.SSLError is an OSError
            tls.unwrap()  # everything read is stored: acknowledge by closing cleanly

    @staticmethod
    def _read_some(tls: ssl.SSLSocket) -> bytes:
        """What has arrived, up to READ_CAP, so many frames commit in one transaction."""
        first = tls.recv(65536)
        if not first:
            return b""
        chunks, size = [first], len(first)
        while size < READ_CAP:
            if not tls.pending() and not select.select([tls], [], [], 0)[0]:
                break
            more = tls.recv(65536)
            if not more:
                break  # end of stream: seen by the next recv too
            chunks.append(more)
            size += len(more)
        return b"".join(chunks)

    # -- UDP ------------------------------------------------------------------------------

    def _udp_loop(self) -> None:
        assert self._udp is not None
        sock = self._udp
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            batch: dict[str, list[bytes]] = {addr[0]: [data]}
            sock.setblocking(False)
            try:
                for _ in range(UDP_BATCH - 1):
                    data, addr = sock.recvfrom(65535)
                    batch.setdefault(addr[0], []).append(data)
            except (BlockingIOError, OSError):
                pass
            finally:
                sock.settimeout(0.5)
            for address, frames in batch.items():
                try:
                    self.accept(frames, Peer(address))
                except Exception as exc:  # noqa: BLE001 - keep serving; the database may return
                    log.error(
                        "audit repository could not store %d datagram(s): %s",
                        len(frames),
                        error_kind(exc),
                    )
