"""``make demo``: three communities on loopback, and a VA clinician querying them all.

Communities (each its own ``ihe-gateway serve`` process, development PKI, SQLite
database and home community OID): a DoD community (MHS GENESIS), the VA, and a
private-sector eHealth Exchange participant. Each step is a function run in order
by ``run``: initialise the three (``ihe-gateway init``); make them trust each other's
CA and register each other (``partners add --url --ca``); load one person, known
under a different id in each (``patients add``), and C-CDA documents at DoD and at
the partner (``documents import``); serve all three over mutual TLS; then, as VA:
an ITI-55 to VA's initiating gateway (``/ig/xcpd``), which asks DoD and the partner
who knows the person and stores the matches it verifies against VA's own record;
an ITI-18 to VA's initiating gateway, which fans ITI-38 out to DoD and the partner
(each request carrying a SAML assertion VA signs and the responder verifies), and
an ITI-43 for every document found (ITI-39 out), whose bytes must equal the
imported files'. Everything is stopped and the folder removed, also when a step
fails or the demo is interrupted; exit status 0 only when every step behaved.

The client side uses requests with ``trust_env = False`` and ``verify=`` the CA on
every call: this machine sets REQUESTS_CA_BUNDLE, which would otherwise replace our
CA with the public web bundle. ``gateway.federation`` holds the set-up steps and
``gateway.demo_exchanges`` the exchanges as VA (steps 7 to 10).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from gateway.federation import Federation

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0
DATABASE_ENV = "GATEWAY_DATABASE_URL"  # gateway.config.DATABASE_ENV (the demo uses SQLite)


class DemoFailed(Exception):
    """A step did not behave as expected; the message says what was seen."""


@dataclass
class Gateway:
    """A served community: its folder, its server process and how to reach it."""

    directory: Path
    port: int
    scheme: str = "https"  # "http" only for ``serve --http``
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def config(self) -> Path:
        return self.directory / "gateway.toml"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}"

    def cert(self, name: str) -> Path:
        return self.directory / "certs" / name

    def server_log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def ihe_gateway_command() -> list[str]:
    """The ``ihe-gateway`` console script next to this Python, else ``python -m``."""
    script = Path(sys.executable).with_name("ihe-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def init_community(directory: Path, port: int, env: Mapping[str, str] | None = None) -> Gateway:
    """Step 1: ``ihe-gateway init DIR --port N``, exactly as a new user runs it."""
    result = subprocess.run(
        [*ihe_gateway_command(), "init", str(directory), "--port", str(port)],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if result.returncode != 0:
        raise DemoFailed(f"ihe-gateway init failed ({result.returncode}):\n{result.stderr}")
    print(_indent(result.stdout))
    return Gateway(directory=directory, port=port)


def start_server(
    gateway: Gateway, env: Mapping[str, str] | None = None, extra_args: Sequence[str] = ()
) -> None:
    """Step 2: ``ihe-gateway serve --config DIR/gateway.toml`` as a child process.

    Its output (JSON log lines) goes to ``DIR/server.log``.
    """
    gateway.log_path = gateway.directory / "server.log"
    with gateway.log_path.open("wb") as log:
        gateway.process = subprocess.Popen(
            [*ihe_gateway_command(), "serve", "--config", str(gateway.config), *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
        )


def mtls_session(gateway: Gateway) -> requests.Session:
    """A client holding the community's client certificate and trusting only its CA."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not apply
    session.verify = str(gateway.cert("ca.pem"))
    session.cert = (str(gateway.cert("client.pem")), str(gateway.cert("client-key.pem")))
    return session


def wait_until_ready(
    gateway: Gateway, session: requests.Session, timeout: float = READY_TIMEOUT_S
) -> dict:
    """Step 3: poll ``/healthz`` over mutual TLS until it answers 200; return its report."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if gateway.process is not None and gateway.process.poll() is not None:
            raise DemoFailed(
                f"the server exited with status {gateway.process.returncode}:\n"
                + gateway.server_log()
            )
        try:
            resp = session.get(
                f"{gateway.base_url}/healthz", verify=str(gateway.cert("ca.pem")), timeout=5
            )
            if resp.status_code == 200:
                return resp.json()
        except requests.ConnectionError:
            pass  # not listening yet, or the workers are still starting
        if time.monotonic() > deadline:
            raise DemoFailed(f"/healthz did not answer within {timeout:.0f} s")
        time.sleep(delay)  # polling interval, growing to 0.25 s
        delay = min(delay * 2, 0.25)


def refuse_without_certificate(gateway: Gateway) -> str:
    """Step 4: a client that trusts the server but shows no certificate gets no answer."""
    anonymous = requests.Session()
    anonymous.trust_env = False
    try:
        resp = anonymous.get(
            f"{gateway.base_url}/healthz", verify=str(gateway.cert("ca.pem")), timeout=5
        )
    except requests.ConnectionError as exc:  # SSLError is a ConnectionError
        return _first_line(exc)
    raise DemoFailed(f"a client without a certificate was answered: HTTP {resp.status_code}")


def stop_server(gateway: Gateway, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, then wait for gunicorn's graceful shutdown; return its status."""
    process = gateway.process
    if process is None:
        return 0
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise DemoFailed(f"the server did not stop within {timeout:.0f} s of SIGTERM") from None
    return process.returncode




# -- the federation demo, one function per step --------------------------------------------


def init_all(fed: Federation, workdir: Path, env: Mapping[str, str]) -> None:
    """``ihe-gateway init`` for each community (in parallel: they share nothing yet)."""
    from gateway.federation import in_parallel, init

    in_parallel(fed.all, lambda c: init(c, workdir, env))
    for c in fed.all:
        print(f"  {c.name:<16} {c.hcid:<18} https://localhost:{c.served.port}  "
              f"{c.served.directory}")


def federate(fed: Federation, env: Mapping[str, str]) -> None:
    """``partners add --url --ca`` each other: endpoints, and each other's CA trusted for
    inbound mutual TLS and XUA (the command adds it to the trust store)."""
    from gateway.federation import add_partner, in_parallel

    in_parallel(fed.all, lambda c: [add_partner(c, o, env) for o in fed.all if o is not c])
    for c in fed.all:
        others = ", ".join(o.name for o in fed.all if o is not c)
        print(f"  {c.name:<16} registered {others} as partners and trusts their CAs")


def load_patient(fed: Federation, env: Mapping[str, str]) -> None:
    """The same person under each community's own id; nobody knows the others' ids yet."""
    from gateway.federation import PERSON, add_patient, in_parallel

    in_parallel(fed.all, lambda c: add_patient(c, PERSON, env))
    for c in fed.all:
        also = f" (also lists {', '.join(c.links)})" if c.links else ""
        print(f"  {c.name:<16} {PERSON.given} {PERSON.family}: {c.patient_id}{also}")


def load_documents(fed: Federation, env: Mapping[str, str]) -> None:
    """``documents import`` of the C-CDA files at DoD and at the partner."""
    from gateway.federation import import_documents, in_parallel

    for c, lines in zip(fed.responders, in_parallel(fed.responders,
                                                    lambda c: import_documents(c, env)),
                        strict=True):
        for line in lines:
            print(f"  {c.name:<16} {line}")


def serve_all(fed: Federation, env: Mapping[str, str]) -> None:
    """``ihe-gateway serve`` for each, then wait until each answers /healthz over mTLS."""
    for c in fed.all:
        start_server(c.served, env=env)
    for c in fed.all:
        with mtls_session(c.served) as session:
            report = wait_until_ready(c.served, session)
        print(f"  {c.name:<16} {c.served.base_url} ready, database {report.get('database')}")


def stop_all(fed: Federation) -> None:
    failed = [c.name for c in fed.all if c.gateway and stop_server(c.served) != 0]
    if failed:
        raise DemoFailed(f"{', '.join(failed)} did not exit cleanly")
    print("  all three stopped cleanly")


def run(workdir: Path) -> None:
    """Every step; raises DemoFailed on the first surprise. Servers never outlive it."""
    from gateway.demo_exchanges import (
        discover_patient,
        query_all_communities,
        retrieve_all,
        summary,
    )
    from gateway.federation import define

    env = {k: v for k, v in os.environ.items() if k != DATABASE_ENV}  # each its own SQLite
    env["PYTHONUNBUFFERED"] = "1"
    fed = define(workdir)
    try:
        _step(1, "ihe-gateway init: three communities, each with its own PKI and database")
        init_all(fed, workdir, env)
        _step(2, "ihe-gateway partners add --url --ca: each other's endpoints and CA")
        federate(fed, env)
        _step(3, "ihe-gateway patients add: one person, a different id in each community")
        load_patient(fed, env)
        _step(4, "ihe-gateway documents import: C-CDA documents at DoD and at the partner")
        load_documents(fed, env)
        _step(5, "ihe-gateway serve: all three over mutual TLS")
        serve_all(fed, env)
        _step(6, "a client without a certificate")
        print(f"  refused at the TLS handshake: {refuse_without_certificate(fed.va.served)}")
        with mtls_session(fed.va.served) as session:
            _step(7, "as VA: XCPD to VA's initiating gateway (ITI-55 to DoD and the partner)")
            discover_patient(fed, session)
            _step(8, "as VA: ITI-18 to VA's initiating gateway (ITI-38 to DoD and the partner)")
            found = query_all_communities(fed, session)
            _step(9, "as VA: ITI-43 for every document found (ITI-39 out to each community)")
            got = retrieve_all(fed, session, found)
        _step(10, "summary")
        summary(fed, found, got)
    except BaseException as exc:
        for c in fed.all:
            if c.gateway is not None and c.gateway.process is not None:
                stop_server(c.gateway)
                if isinstance(exc, DemoFailed):
                    tail = "\n".join(c.gateway.server_log().splitlines()[-30:])
                    print(f"--- {c.name} server log (end) ---\n{tail}", file=sys.stderr)
        raise
    _step(11, "stopping the servers (SIGTERM)")
    stop_all(fed)


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ihe-gateway-demo-"))

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):  # `kill` or Ctrl-C: stop the servers
        signal.signal(signum, interrupted)
    try:
        run(workdir)
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted: servers stopped.", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDemo passed in {time.monotonic() - started:.1f} s; removed {workdir}.")
    return 0


def _step(n: int, text: str) -> None:
    print(f"\n[{n}] {text}", flush=True)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.rstrip().splitlines())


def _first_line(exc: BaseException) -> str:
    """The TLS reason inside requests' nested message, else its first line."""
    text = str(exc)
    found = re.search(r"\[SSL: [^\]]+\][^(']*", text)
    if found:
        return found.group(0).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    from gateway.demo import main as demo_main  # one module object, whatever ran it

    sys.exit(demo_main())
