"""``ihe-gateway serve``: the Flask app under gunicorn, with mutual TLS.

Why these choices:
- gthread workers with keep-alive: a partner's connection carries many requests
  over one TLS handshake (measured ~3x the throughput of sync workers, DESIGN.md).
- The app is built in each worker after the fork (no preload), so no worker
  shares a SQLAlchemy engine, pool or socket with another; migrations run once
  in the arbiter before any worker starts, so a database problem stops
  ``serve`` with one clear message instead of a crash loop of workers.
- A client certificate is required and verified at the handshake against the
  trust store (ATNA ITI-19 node authentication): a peer without one never
  reaches the application. TLS 1.2 is the minimum, forward-secret AEAD suites
  only (``TLS_CIPHERS``; TLS 1.3 suites are all acceptable).
- SIGTERM stops gracefully (in-flight requests finish); SIGHUP re-reads
  gateway.toml and starts new workers, which also picks up a changed trust
  store or certificate (each worker builds its TLS context once).
- With ``[mllp] enabled`` the PIX Manager's HL7 v2 listener runs beside gunicorn
  as a child process the arbiter supervises (``gateway.mllp_service`` says why a
  process and not a thread); it stops with the server and reloads on SIGHUP.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

import click
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from gateway.config import Config, ConfigError, Tls, load_config
from gateway.logs import JsonFormatter, configure_logging

log = logging.getLogger("gateway.server")

# BCP 195 / eHealth Exchange practice: ECDHE or DHE key exchange with AES-GCM or ChaCha20.
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM"
TLS_MINIMUM = ssl.TLSVersion.TLSv1_2
# Partners reuse a connection for a burst of requests; gunicorn's default (2 s) is short.
KEEPALIVE_SECONDS = 5
HTTP_WARNING = """\
WARNING: serving PLAIN HTTP. There is no TLS and no client authentication:
anyone who can reach this port can send requests, and everything crosses the
network in clear text. This is for development on a trusted machine only;
never use --http with real patient data or real partners.
"""


class ServeError(click.ClickException):
    """The server cannot start (unusable TLS files, database); the message says why."""


def gunicorn_options(
    config: Config, *, port: int | None = None, workers: int | None = None, http: bool = False
) -> dict[str, Any]:
    """The gunicorn settings for ``config`` (``port``/``workers`` override it)."""
    host = config.server.host
    bind_host = f"[{host}]" if ":" in host else host
    options: dict[str, Any] = {
        "bind": [f"{bind_host}:{port or config.server.port}"],
        "workers": workers or config.server.workers,
        "worker_class": "gthread",
        "threads": config.server.threads,
        "keepalive": KEEPALIVE_SECONDS,
        # gunicorn's timeout is an integer number of seconds.
        "timeout": max(1, math.ceil(config.limits.request_timeout_seconds)),
        "graceful_timeout": 30,
        "preload_app": False,
        "proc_name": "ihe-gateway",
        "logger_class": JsonGunicornLogger,
        "errorlog": "-",
        "accesslog": None,  # the app logs one JSON line per request (gateway.http)
        # No proxy sits in front of a mutual-TLS endpoint: trust no X-Forwarded-* header.
        "forwarded_allow_ips": "",
        # gunicorn >= 25 opens a control socket at one fixed per-user path by default;
        # two gateways on one machine (tests, the federation demo) would fight over it.
        "control_socket_disable": True,
        "worker_exit": _worker_exit,
        # `ihe-gateway certs trust|untrust|rotate|install` send SIGHUP to this pid (certs.reload).
        "pidfile": str(config.data_dir / "gateway.pid"),
    }
    if not http:
        if config.tls is None:
            raise ServeError(
                "no [tls] section in the configuration: HTTPS needs a certificate, "
                "a private key and a trust store (or pass --http for development)"
            )
        options |= {
            "certfile": str(config.tls.certificate),
            "keyfile": str(config.tls.private_key),
            "ca_certs": str(config.tls.trust_store),
            "cert_reqs": ssl.CERT_REQUIRED,
            "ciphers": TLS_CIPHERS,
            "ssl_context": tls_context,
        }
    return options


_contexts: dict[int, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(conf: Any, default_factory: Any) -> ssl.SSLContext:
    """gunicorn's ``ssl_context`` hook: its context, hardened, built once per worker.

    gunicorn calls the hook for every new connection; loading the key and the
    trust store each time costs ~0.9 ms per connection (one CA; more for a
    whole exchange bundle). The cache is keyed by process id, so a worker
    started by a reload (SIGHUP) reads the files again.
    """
    pid = os.getpid()
    with _contexts_lock:
        context = _contexts.get(pid)
        if context is None:
            context = harden(default_factory())
            _contexts.clear()
            _contexts[pid] = context
        return context


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """Require a verified client certificate, TLS 1.2 or newer and strong suites."""
    context.verify_mode = ssl.CERT_REQUIRED
    # A partner certificate pinned in the trust store (not a CA) is a trust anchor itself.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.minimum_version = TLS_MINIMUM
    context.set_ciphers(TLS_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(tls: Tls) -> ssl.SSLContext:
    """The server context built from ``tls`` as the workers will build it; raises ServeError.

    Run in the arbiter before any worker starts: gunicorn builds contexts only
    when a connection arrives, so a key that does not match its certificate
    would otherwise fail every handshake while the server looked healthy.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.trust_store))
        context.load_cert_chain(str(tls.certificate), str(tls.private_key))
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(
            f"cannot use the TLS files (certificate {tls.certificate}, key {tls.private_key}, "
            f"trust store {tls.trust_store}): {exc}"
        ) from None
    return harden(context)


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's own messages (start, workers, errors) as JSON lines, like the app's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())


def _worker_exit(server: Any, worker: Any) -> None:
    """Close the worker's database connections as it stops (PostgreSQL sees them end)."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("gateway")
    if runtime is not None:
        if runtime.audit_sender is not None:
            runtime.audit_sender.stop()
        runtime.database.dispose()


class GatewayArbiter(Arbiter):
    """gunicorn's arbiter, also minding the MLLP listener (``app.mllp``) from its loop."""

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.app.mllp is not None:
            self.app.mllp.supervise()

    def handle_hup(self) -> None:
        super().handle_hup()
        config, app = self.app.gateway_config, self.app
        if app.mllp is None and config.mllp.enabled and app.config_path is not None:
            from gateway.mllp_service import MllpChild  # [mllp] switched on in gateway.toml

            app.mllp = MllpChild(Path(app.config_path))
        if app.mllp is not None:
            app.mllp.reload(config)


class GatewayApplication(BaseApplication):
    """gunicorn driven from code: settings from gateway.toml, the app from create_app."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None,
        port: int | None = None,
        workers: int | None = None,
        http: bool = False,
    ) -> None:
        self.gateway_config = config
        self.config_path = config_path
        self.overrides = {"port": port, "workers": workers, "http": http}
        self._loaded = False
        self.mllp: Any = None  # gateway.mllp_service.MllpChild when [mllp] is enabled
        super().__init__(prog="ihe-gateway serve")

    def run(self) -> None:
        try:
            GatewayArbiter(self).run()
        except RuntimeError as exc:  # as BaseApplication.run reports gunicorn's own errors
            sys.stderr.write(f"\nError: {exc}\n\n")
            sys.stderr.flush()
            sys.exit(1)

    def load_config(self) -> None:
        if self._loaded and self.config_path is not None:
            self._reread()
        self._loaded = True
        for key, value in gunicorn_options(self.gateway_config, **self.overrides).items():
            self.cfg.set(key, value)

    def _reread(self) -> None:
        """On SIGHUP: the new gateway.toml, or the old one if the new one is broken."""
        try:
            config = load_config(self.config_path)
            gunicorn_options(config, **self.overrides)  # raises if [tls] went missing
            if not self.overrides["http"]:
                server_context(config.tls)
        except (ConfigError, ServeError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self.gateway_config = config
        log.info("configuration reloaded from %s", self.config_path)
        _warn_expiry(config)

    def load(self) -> Any:
        # Runs in each worker after the fork (preload_app is off).
        from gateway.app import create_app

        return create_app(self.gateway_config)


def serve(
    config: Config,
    *,
    config_path: Path | None,
    port: int | None = None,
    workers: int | None = None,
    http: bool = False,
) -> None:
    """Run the gateway until SIGTERM or SIGINT; gunicorn ends by raising SystemExit.

    Raises ServeError (a click exception: message, exit status 1) when the TLS
    files are unusable or the database cannot be migrated.
    """
    configure_logging()
    # Alembic announces each of its plugins at INFO on every start; migrations still log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if http:
        sys.stderr.write(HTTP_WARNING)
        sys.stderr.flush()
    else:
        if config.tls is None:
            gunicorn_options(config)  # raises the ServeError that explains it
        server_context(config.tls)
        _warn_expiry(config)
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # SQLite's file lives here
    _migrate(config.database_url)
    mllp = _mllp_child(config, config_path)
    auditor = _node_auditor(config)
    auditor.application_activity(True, launcher="ihe-gateway serve")
    application = None
    try:
        application = GatewayApplication(
            config, config_path=config_path, port=port, workers=workers, http=http
        )
        if mllp is not None:
            application.mllp = mllp
            mllp.start()
        application.run()
    finally:
        if application is not None and application.mllp is not None:
            application.mllp.stop()  # the one started here, or one a reload switched on
        elif mllp is not None:
            mllp.stop()
        auditor.application_activity(False, launcher="ihe-gateway serve")
        auditor.queue.database.dispose()


def _warn_expiry(config: Config) -> None:
    """Log every certificate in use that has lapsed or lapses within 30 days."""
    from certs.inventory import collect, needs_attention

    for entry in collect(config):
        if needs_attention(entry.status()):
            subject = entry.cert.subject.rfc4514_string() if entry.cert else "?"
            log.warning("certificate %s: %s %s in %s (%s), %s days left", entry.status(),
                        entry.role, subject, entry.file, entry.user, entry.days_left())


def _mllp_child(config: Config, config_path: Path | None):
    """The MLLP listener to start, checked first (address free, TLS files usable)."""
    if not config.mllp.enabled:
        return None
    import socket

    from gateway.mllp_service import MllpChild, address, tls_context

    path = config_path or config.source
    if path is None:
        raise ServeError("[mllp] needs the configuration file (serve --config F)")
    tls_context(config)  # raises ServeError when the files are unusable
    host, port = address(config)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise ServeError(f"[mllp] cannot listen on {host}:{port}: {exc}") from None
    return MllpChild(Path(path))


def _node_auditor(config: Config):
    """The master's own auditor, for application start and stop (ITI-20 node events)."""
    from gateway.audit.hook import Auditor
    from gateway.store.db import Database

    return Auditor.from_config(config, Database(config.database_url, pool_size=1))


def _migrate(url: str) -> None:
    from gateway.store.migrate import MigrationError, ensure_current

    try:
        ensure_current(url)
    except MigrationError as exc:
        raise ServeError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - unreachable database, bad credentials...
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        raise ServeError(f"cannot open the database {shown}: {type(exc).__name__}: {exc}") from None
