"""The audit record repository: who may connect, which frames and messages it takes."""

from __future__ import annotations

import contextlib
import socket
import ssl
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.audit.repository import AuditRepository
from gateway.audit.sender import AuditSender
from gateway.audit.transport import client_context, server_context
from gateway.config import AuditDestination, Tls
from profiles.atna.record import audit_record
from profiles.atna.syslog import audit_syslog, frame
from tests.gateway.audit.helpers import query_message, wait_for

WHEN = datetime(2024, 5, 6, tzinfo=UTC)


def syslog_of(n: int) -> bytes:
    xml = audit_record(query_message(n)).xml
    return audit_syslog(xml, timestamp=WHEN, hostname="gw", app_name="test", procid="1")


def connect(port: int, tls: Tls | None, ca) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if tls is not None:
        ctx.load_cert_chain(str(tls.certificate), str(tls.private_key))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def closed_by_peer(sock: ssl.SSLSocket) -> bool:
    """True when the peer ended the connection (alert, reset or EOF)."""
    try:
        return sock.recv(1024) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def stored(repo) -> int:
    with repo.database.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_a_client_without_a_trusted_certificate_is_refused(make_repository, pki, who):
    repo = make_repository()
    identity = None if who == "no certificate" else pki.stranger
    with contextlib.suppress(ssl.SSLError, ConnectionError):  # TLS 1.2 fails at once
        sock = connect(repo.tls_address[1], identity, pki.ca)
        with sock:  # TLS 1.3: the server's alert arrives after the client's handshake
            sock.sendall(frame(syslog_of(1)))
            assert closed_by_peer(sock)
    wait_for(lambda: repo.stats["refused_handshakes"] == 1, timeout=10, what="a refusal")
    assert repo.stats["connections"] == 0 and stored(repo) == 0


def test_the_sender_refuses_a_repository_its_trust_store_does_not_vouch_for(
    db, repo_db, pki, audit_schema
):
    impostor = AuditRepository(
        repo_db,
        host="127.0.0.1",
        tls_port=0,
        tls_context=server_context(Tls(pki.stranger.certificate, pki.stranger.private_key, pki.ca)),
        schema=audit_schema,
    )
    impostor.start()
    try:
        dest = AuditDestination("tls", "localhost", impostor.tls_address[1])
        queue = AuditQueue(db, [dest])
        queue.enqueue_now(query_message(1))
        AuditSender(db, [dest], pki.client_context).run_once()
        report = queue.backlog()["destinations"][f"tls://localhost:{dest.port}"]
        assert report["pending"] == 1 and "CERTIFICATE_VERIFY_FAILED" in report["last_error"]
        assert stored(impostor) == 0
    finally:
        impostor.stop()


def test_frames_arrive_whole_and_duplicates_are_stored_once(make_repository, pki):
    repo = make_repository()
    with connect(repo.tls_address[1], pki.client, pki.ca) as sock:
        data = frame(syslog_of(1)) + frame(syslog_of(2)) + frame(syslog_of(1))
        for i in range(0, len(data), 777):  # frames split across TLS records and reads
            sock.sendall(data[i : i + 777])
        sock.unwrap()  # the repository closes cleanly once all is stored
    assert stored(repo) == 2
    assert (repo.stats["frames"], repo.stats["stored"], repo.stats["duplicates"]) == (3, 2, 1)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"<85>1 2024-05-06T00:00:00Z gw app 1 IHE+RFC-3881 - x\n", id="LF framing"),
        pytest.param(b"12x <85>1 -", id="bad length"),
        pytest.param(b"0 ", id="zero length"),
        pytest.param(b"99999999 <85>1", id="over the size limit"),
    ],
)
def test_malformed_frames_close_the_connection(make_repository, pki, garbage):
    repo = make_repository()
    with connect(repo.tls_address[1], pki.client, pki.ca) as sock:
        sock.sendall(frame(syslog_of(1)) + garbage)
        assert closed_by_peer(sock)
    wait_for(lambda: repo.stats["broken_frames"] == 1, timeout=10, what="a broken frame")
    assert stored(repo) == 1  # what came before the broken frame was good


def test_invalid_messages_are_refused_and_the_stream_goes_on(make_repository, pki, caplog):
    repo = make_repository()
    valid = syslog_of(1)
    not_syslog = b"hello, world"
    not_xml = valid.replace(b"<AuditMessage", b"<AuditMessage <")
    header, _, xml = valid.partition(b"<?xml")
    not_the_schema = header + b'<?xml version="1.0"?><AuditMessage><Nothing/></AuditMessage>'
    with connect(repo.tls_address[1], pki.client, pki.ca) as sock:
        for message in (not_syslog, not_xml, not_the_schema, valid):
            sock.sendall(frame(message))
        sock.unwrap()
    assert repo.stats["invalid"] == 3 and stored(repo) == 1
    assert "P-1" not in caplog.text  # no PHI in logs


def test_the_repository_takes_records_from_the_gateway_client_context(make_repository, pki):
    """The sender's own client context (our certificate, trust store) is accepted."""
    repo = make_repository()
    ctx = client_context(pki.client)
    raw = socket.create_connection(("127.0.0.1", repo.tls_address[1]), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        sock.sendall(frame(syslog_of(5)))
        sock.unwrap()
    assert stored(repo) == 1
