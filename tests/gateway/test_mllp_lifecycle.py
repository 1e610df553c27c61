"""The MLLP listener's lifecycle as ``serve`` drives it: a frame that never ends is cut off
after the read timeout, ``close`` lets a message being answered finish and drops idle
connections, ``rebind`` applies a new trust store to new connections while open ones go on,
and ``MllpChild`` restarts a dead listener and stops a live one."""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from pathlib import Path

import pytest

from certs.authority import create_authority, issue
from gateway.mllp import MllpServer, frame, read_frame
from gateway.mllp_service import MllpChild


def echo(message: bytes) -> bytes:
    return b"ACK " + message


async def connect(server: MllpServer, tls: ssl.SSLContext | None = None):
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=tls,
                                         server_hostname="localhost" if tls else None)


async def ask(reader, writer, message: bytes) -> bytes | None:
    writer.write(frame(message))
    await writer.drain()
    return await read_frame(reader)


def test_a_frame_that_never_ends_is_cut_off():
    async def scenario():
        server = MllpServer(echo, port=0, read_timeout=0.2)
        await server.start()
        try:
            reader, writer = await connect(server)
            writer.write(b"\x0bMSH|half a message")  # started, never finished
            await writer.drain()
            return await reader.read()  # b"" once the listener closes the connection
        finally:
            await server.close()

    assert asyncio.run(scenario()) == b""


def test_close_finishes_the_answer_in_flight_and_drops_idle_connections():
    started, release = threading.Event(), threading.Event()

    def slow(message: bytes) -> bytes:
        started.set()
        release.wait(10)
        return b"done " + message

    async def scenario():
        server = MllpServer(slow, port=0)
        await server.start()
        busy_reader, busy_writer = await connect(server)
        idle_reader, _ = await connect(server)
        busy_writer.write(frame(b"MSH|1"))
        await busy_writer.drain()
        await asyncio.to_thread(started.wait, 10)
        closing = asyncio.create_task(server.close(grace=10))
        assert await idle_reader.read() == b""  # the idle one goes at once
        release.set()
        answer = await read_frame(busy_reader)
        await closing
        after = await busy_reader.read()
        return answer, after, server.listening

    answer, after, listening = asyncio.run(scenario())
    assert (answer, after, listening) == (b"done MSH|1", b"", False)


@pytest.fixture(scope="module")
def two_cas(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cas")
    first, second = create_authority("first CA"), create_authority("second CA")
    (folder / "first.pem").write_bytes(first.certificate_pem())
    (folder / "both.pem").write_bytes(first.certificate_pem() + second.certificate_pem())
    issue(first, "localhost").save(folder / "server.pem", folder / "server.key")
    issue(first, "old client").save(folder / "old.pem", folder / "old.key")
    issue(second, "new client").save(folder / "new.pem", folder / "new.key")
    return folder


def server_context(folder: Path, trust: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(folder / trust))
    context.load_cert_chain(str(folder / "server.pem"), str(folder / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client(folder: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(folder / "first.pem"))
    context.load_cert_chain(str(folder / f"{name}.pem"), str(folder / f"{name}.key"))
    return context


def test_rebind_trusts_a_new_ca_for_new_connections_and_keeps_open_ones(two_cas):
    async def refused(server: MllpServer) -> bool:
        try:
            reader, writer = await connect(server, client(two_cas, "new"))
            return await ask(reader, writer, b"MSH|x") is None
        except (ssl.SSLError, ConnectionError):
            return True

    async def scenario():
        server = MllpServer(echo, port=0, tls=server_context(two_cas, "first.pem"))
        await server.start()
        port = server.port
        try:
            before = await refused(server)
            old_reader, old_writer = await connect(server, client(two_cas, "old"))
            assert await ask(old_reader, old_writer, b"MSH|1") == b"ACK MSH|1"
            await server.rebind(tls=server_context(two_cas, "both.pem"))
            reader, writer = await connect(server, client(two_cas, "new"))
            fresh = await ask(reader, writer, b"MSH|2")
            kept = await ask(old_reader, old_writer, b"MSH|3")  # the open connection goes on
            return before, fresh, kept, server.port == port
        finally:
            await server.close()

    assert asyncio.run(scenario()) == (True, b"ACK MSH|2", b"ACK MSH|3", True)


def test_rebind_to_a_taken_address_keeps_the_old_one():
    async def scenario():
        server, other = MllpServer(echo, port=0), MllpServer(echo, port=0)
        await server.start()
        await other.start()
        try:
            with pytest.raises(OSError):
                await server.rebind(tls=None, port=other.port)
            reader, writer = await connect(server)
            return await ask(reader, writer, b"MSH|still")
        finally:
            await server.close()
            await other.close()

    assert asyncio.run(scenario()) == b"ACK MSH|still"


class FakeChild(MllpChild):
    """MllpChild running a stand-in command instead of the listener."""

    command = [sys.executable, "-c", "import time; time.sleep(60)"]

    def start(self) -> None:
        import subprocess
        import time

        self.stopping, self.started_at = False, time.monotonic() - 3600
        self.process = subprocess.Popen(self.command)


def test_a_dead_child_is_restarted_and_a_live_one_stopped(tmp_path):
    child = FakeChild(tmp_path / "gateway.toml")
    child.start()
    first = child.process
    first.kill()
    first.wait()
    child.supervise()
    assert child.process is not first and child.process.poll() is None
    second = child.process
    child.stop()
    assert second.poll() is not None and child.process is None
    child.supervise()  # stopped on purpose: not restarted
    assert child.process is None


def test_sighup_passes_on_or_switches_the_listener_on(tmp_path, monkeypatch):
    """The arbiter's HUP: gunicorn reloads, then the listener is told (or started when
    gateway.toml now enables it); its loop supervises it."""
    from types import SimpleNamespace

    from gunicorn.arbiter import Arbiter

    from gateway.server import GatewayArbiter

    told: list = []
    monkeypatch.setattr(Arbiter, "handle_hup", lambda self: told.append("gunicorn reloaded"))
    monkeypatch.setattr(Arbiter, "manage_workers", lambda self: None)
    monkeypatch.setattr(MllpChild, "reload", lambda self, config: told.append(
        ("reload", self.config_path, config.mllp.enabled)))
    monkeypatch.setattr(MllpChild, "supervise", lambda self: told.append("supervised"))
    config = SimpleNamespace(mllp=SimpleNamespace(enabled=True))
    app = SimpleNamespace(gateway_config=config, config_path=tmp_path / "gateway.toml",
                          mllp=None)
    arbiter = object.__new__(GatewayArbiter)
    arbiter.app = app
    arbiter.handle_hup()
    assert isinstance(app.mllp, MllpChild)
    arbiter.manage_workers()
    assert told == ["gunicorn reloaded", ("reload", tmp_path / "gateway.toml", True),
                    "supervised"]
    app.mllp, config.mllp.enabled, told[:] = None, False, []
    arbiter.handle_hup()
    assert app.mllp is None and told == ["gunicorn reloaded"]
