"""``audit-repository --config F`` as a process: it listens, stores what a gateway sends,
records its own start and stop, and ends on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.audit.sender import AuditSender
from gateway.config import AuditDestination
from gateway.store.db import Database
from tests.gateway.audit.helpers import query_message, wait_for

REPO = Path(__file__).resolve().parents[3]
LAUNCH = "import sys; from gateway.audit.cli import audit_repository_command as c; c(sys.argv[1:])"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_repository_command_receives_and_stores(tmp_path, pki, db) -> None:
    store = f"sqlite:///{tmp_path / 'repo.db'}"
    config = tmp_path / "repository.toml"
    config.write_text(
        f"""
[community]
home_community_id = "1.3.6.1.4.1.21367.2011.2.9"
[storage]
data_dir = "{tmp_path / "data"}"
[database]
url = "{store}"
[tls]
certificate = "{pki.server.certificate}"
private_key = "{pki.server.private_key}"
trust_store = "{pki.ca}"
"""
    )
    port, udp = free_port(), free_port()
    args = ["--config", str(config), "--host", "127.0.0.1", "--tls-port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args, "--udp-port", str(udp)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.stderr.read()
        dest = AuditDestination("tls", "localhost", port)
        AuditQueue(db, [dest]).enqueue_now(query_message(1))
        assert AuditSender(db, [dest], pki.client_context).run_once() is False
        assert AuditQueue(db, [dest]).backlog()["pending"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '"audit repository listening' in err
    repository = Database(store)
    try:
        with repository.session() as s:
            rows = s.execute(sa.select(AuditEntry.origin, AuditEntry.event_type)).all()
    finally:
        repository.dispose()
    assert sorted(rows) == [("local", "110120"), ("local", "110121"), ("received", "ITI-38")]
