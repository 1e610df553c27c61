"""The MLLP listener of ``ihe-gateway serve``: a child process the gunicorn master supervises.

Why a child process, not a thread in the master: the master forks workers (at start,
on SIGHUP, after a crash), and forking a process whose other thread holds a lock
(logging, the SQLAlchemy pool, the event loop's) can leave the worker deadlocked;
gunicorn keeps its master single-threaded for that reason. A child started with
``fork``+``exec`` (``python -m gateway.mllp_service CONFIG``) shares nothing with the
master or the workers, has its own event loop and database pool, and crashes alone.

Lifecycle (``MllpChild``, driven from ``gateway.server.GatewayArbiter``):

* ``serve`` checks the address and TLS files, then starts the child before gunicorn;
* the arbiter's loop (about once a second) restarts a child that died, at most
  once per ``RESTART_BACKOFF_S``, logging why;
* SIGHUP to the master (``certs trust|rotate``...) reloads gunicorn and is passed on:
  the child re-reads gateway.toml and listens again with the new certificate and
  trust store (open connections carry on); a broken file keeps the running settings.
  ``[mllp] enabled`` turned off (or on) stops (or starts) the child;
* SIGTERM or SIGINT to the master stops gunicorn, then the child (SIGTERM, which
  answers messages in flight and closes); a child whose parent disappeared
  (the master killed hard) notices within a second and stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from gateway.config import Config, ConfigError, load_config

log = logging.getLogger("gateway.mllp")

RESTART_BACKOFF_S = 5.0
STOP_TIMEOUT_S = 15.0


def address(config: Config) -> tuple[str, int]:
    return config.mllp.host or config.server.host, config.mllp.port


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The HTTPS side's hardened mutual-TLS context (``gateway.server.server_context``)."""
    if not config.mllp.tls:
        return None
    from gateway.server import server_context

    if config.tls is None:  # config validation refuses this; keep the message anyway
        raise ConfigError(["mllp.tls: TLS needs the [tls] section"])
    return server_context(config.tls)


class MllpChild:
    """The listener process as the master sees it."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.stopping = False

    def start(self) -> None:
        self.stopping = False
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.mllp_service", str(self.config_path)])
        log.info("mllp listener started", extra={"pid": self.process.pid})

    def supervise(self) -> None:
        """Restart the listener if it died (called from the arbiter's loop)."""
        if self.stopping or self.process is None or self.process.poll() is None:
            return
        if time.monotonic() - self.started_at < RESTART_BACKOFF_S:
            return
        log.error("mllp listener exited (status %s); restarting", self.process.returncode)
        self.start()

    def reload(self, config: Config) -> None:
        """After the master re-read gateway.toml: pass SIGHUP on, or start / stop."""
        if not config.mllp.enabled:
            self.stop()
            return
        if self.process is None or self.process.poll() is not None:
            self.start()
            return
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.stopping = True
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("mllp listener did not stop in %s s; killed", STOP_TIMEOUT_S)
            process.kill()
            process.wait()


async def serve(config_path: Path) -> None:
    """Run the listener until SIGTERM/SIGINT or the parent goes away; SIGHUP reloads."""
    from gateway.audit.hook import Auditor
    from gateway.mllp import MllpServer, pix_manager
    from gateway.patients.index import SqlPatientIndex
    from gateway.store.db import Database

    config = load_config(config_path)
    database = Database(config.database_url, pool_size=config.server.threads)
    auditor = Auditor.from_config(config, database)
    host, port = address(config)
    m = config.mllp
    server = MllpServer(pix_manager(SqlPatientIndex(database), auditor,
                                    endpoint=f"mllp://{host}:{port}"),
                        host=host, port=port, tls=tls_context(config),
                        max_message_bytes=m.max_message_bytes,
                        idle_timeout=m.idle_timeout_seconds, read_timeout=m.read_timeout_seconds)
    await server.start()
    auditor.application_activity(True, launcher="ihe-gateway serve (mllp)")
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task] = set()

    async def reload() -> None:
        try:
            fresh = load_config(config_path)
            tls = tls_context(fresh)
        except Exception as exc:  # noqa: BLE001 - a broken file or certificate: keep running
            log.error("mllp reload refused, keeping the running settings: %s", exc)
            return
        new_host, new_port = address(fresh)
        try:
            await server.rebind(tls=tls, host=new_host, port=new_port)
        except OSError as exc:
            log.error("mllp reload cannot listen on %s:%s (%s); keeping %s:%s", new_host,
                      new_port, exc, server.host, server.port)
            if not server.listening:  # not even the old address: exit, the master restarts us
                stop.set()
            return
        log.info("mllp listener reloaded", extra={"host": new_host, "port": new_port,
                                                  "tls": tls is not None})

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    parent = os.getppid()
    print(f"mllp listening on {server.host}:{server.port}", flush=True)
    try:
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await server.close()
        auditor.application_activity(False, launcher="ihe-gateway serve (mllp)")
        database.dispose()


def main() -> None:
    from gateway.logs import configure_logging

    configure_logging()
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gateway.mllp_service CONFIG")
    try:
        asyncio.run(serve(Path(sys.argv[1])))
    except KeyboardInterrupt:  # before the signal handlers were in place
        pass
    except OSError as exc:  # the address is taken
        sys.exit(f"mllp: cannot listen: {exc}")
    except Exception as exc:  # noqa: BLE001 - a broken config or certificate: say so, exit 1
        log.error("mllp listener failed: %s: %s", type(exc).__name__, exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
