"""Helpers for the certificate tests: the CLI as a subprocess, and waiting for a reload."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

from gateway import demo
from tests.e2e.support import server_env

RELOAD_WAIT_S = 30.0


def certs_cli(gateway: demo.Gateway, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``ihe-gateway certs ARGS --config DIR/gateway.toml`` as an operator runs it."""
    result = subprocess.run(
        [*demo.ihe_gateway_command(), "certs", *args, "--config", str(gateway.config)],
        capture_output=True,
        text=True,
        env=server_env(None),
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def serve_community(directory: Path) -> demo.Gateway:
    """``ihe-gateway init`` then ``serve`` (on the community's SQLite); once /healthz answers."""
    env = server_env(None)
    port = demo.free_port()
    subprocess.run([*demo.ihe_gateway_command(), "init", str(directory), "--port", str(port)],
                   capture_output=True, env=env, check=True)
    gateway = demo.Gateway(directory=directory, port=port)
    demo.start_server(gateway, env=env)
    session = demo.mtls_session(gateway)
    try:
        demo.wait_until_ready(gateway, session)
    except BaseException:
        demo.stop_server(gateway)
        raise
    finally:
        session.close()
    return gateway


def _count(gateway: demo.Gateway, text: str) -> int:
    return gateway.server_log().count(text)


class Reload:
    """Context: the server must have swapped all its workers by the end of the block."""

    def __init__(self, gateway: demo.Gateway, workers: int = 2) -> None:
        self.gateway, self.workers = gateway, workers

    def __enter__(self) -> Reload:
        self.booted = _count(self.gateway, "Booting worker")
        self.exited = _count(self.gateway, "Worker exiting")
        return self

    def __exit__(self, kind, *_exc) -> None:
        if kind is not None:
            return
        deadline = time.monotonic() + RELOAD_WAIT_S
        while (
            _count(self.gateway, "Booting worker") < self.booted + self.workers
            or _count(self.gateway, "Worker exiting") < self.exited + self.workers
        ):
            if time.monotonic() > deadline:
                raise AssertionError("no reload:\n" + self.gateway.server_log()[-4000:])
            time.sleep(0.05)  # polling the log for gunicorn's worker events


def context(ca_file: Path, pair: tuple[Path, Path]) -> ssl.SSLContext:
    """A TLS 1.2 client context (the server's verdict ends the handshake) with ``pair``."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.load_cert_chain(str(pair[0]), str(pair[1]))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def accepted(gateway: demo.Gateway, ctx: ssl.SSLContext) -> bool:
    """True when GET /healthz answers 200 over ``ctx``; False when the handshake is refused."""
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    try:
        with (
            socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):
                received += chunk
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False
    return received.startswith(b"HTTP/1.1 200")
