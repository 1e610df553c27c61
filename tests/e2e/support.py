"""Starting and stopping served communities, and raw TLS clients, for the end-to-end tests.

The gateway runs as a real ``ihe-gateway serve`` subprocess (gunicorn, gthread
workers, mutual TLS) on a free loopback port. With GATEWAY_TEST_DATABASE_URL
set, it runs on that PostgreSQL database (through GATEWAY_DATABASE_URL, as an
operator would configure it); otherwise on the community's own SQLite file.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from pathlib import Path

from gateway import demo
from gateway.config import DATABASE_ENV

LOG_WAIT_S = 10.0


def server_env(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DATABASE_ENV}
    if database_url:
        env[DATABASE_ENV] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_gateway(directory: Path, database_url: str | None, *args: str) -> demo.Gateway:
    """``ihe-gateway init`` then ``serve``; returns once /healthz answers."""
    env = server_env(database_url)
    gateway = demo.init_community(directory, demo.free_port(), env=env)
    if "--http" in args:
        gateway.scheme = "http"
    demo.start_server(gateway, env=env, extra_args=args)
    session = demo.mtls_session(gateway)
    try:
        demo.wait_until_ready(gateway, session)
    except BaseException:
        demo.stop_server(gateway)
        raise
    finally:
        session.close()
    return gateway


def stop_gateway(gateway: demo.Gateway) -> None:
    """SIGTERM, and check it was a clean stop."""
    status = demo.stop_server(gateway)
    log = gateway.server_log()
    assert status == 0, f"serve exited with {status}:\n{log}"
    assert "Shutting down: Master" in log


def client_context(
    gateway: demo.Gateway,
    cert: tuple[Path, Path] | None = None,
    *,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client context trusting the community's CA, with an optional client certificate."""
    context = ssl.create_default_context(cafile=str(gateway.cert("ca.pem")))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def exchange(gateway: demo.Gateway, context: ssl.SSLContext, path: str = "/healthz") -> bytes:
    """Handshake, send one GET and return what came back (raises ssl.SSLError if refused)."""
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request.encode())
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
        return received


def log_entry(gateway: demo.Gateway, request_id: str) -> dict:
    """The server's JSON log line for ``request_id`` (waits for it to be written)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        for line in gateway.server_log().splitlines():
            if request_id in line:
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line for {request_id}:\n{gateway.server_log()}")
        time.sleep(0.05)
