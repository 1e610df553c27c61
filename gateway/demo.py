"""``make demo``: a community gateway from nothing to a SOAP round trip over mutual TLS.

Each step is a function, run in order by ``main``: initialise a community in a
temporary folder (``ihe-gateway init``), serve it (``ihe-gateway serve``, a real
gunicorn process), wait until ``/healthz`` answers over mutual TLS, show that a
client without a certificate is refused, fetch a WSDL, send one ITI-18
Registry Stored Query, then stop the server with SIGTERM and remove the folder.
Exit status 0 only when every step behaved as expected. The XCA work turns this
into the federation demo (two communities querying each other).

The client side uses requests with ``trust_env = False`` and the community's CA
passed as ``verify`` on every call: this machine sets REQUESTS_CA_BUNDLE, which
would otherwise replace our CA with the public web bundle.
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
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import requests

from profiles.errors import WSA_NS
from profiles.xml import parse_xml

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
RS_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
ITI18_ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI18_REPLY = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
SOAP12_CONTENT_TYPE = f'application/soap+xml; charset=UTF-8; action="{ITI18_ACTION}"'
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


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


def fetch_wsdl(gateway: Gateway, session: requests.Session, path: str) -> list[str]:
    """Step 5: ``GET path?wsdl``; return its operations after checking where it points."""
    url = f"{gateway.base_url}{path}"
    resp = session.get(f"{url}?wsdl", verify=str(gateway.cert("ca.pem")), timeout=10)
    if resp.status_code != 200:
        raise DemoFailed(f"GET {path}?wsdl answered HTTP {resp.status_code}")
    doc = parse_xml(resp.content)
    if doc.tag != f"{{{WSDL_NS}}}definitions":
        raise DemoFailed(f"GET {path}?wsdl did not return a WSDL (root {doc.tag})")
    addresses = {a.get("location") for a in doc.iter("{*}address")}
    if addresses != {url}:
        raise DemoFailed(f"the WSDL points at {sorted(addresses)}, not {url}")
    return [op.get("name") for op in doc.iterfind(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation")]


def registry_stored_query(message_id: str, to: str, patient_id: str) -> bytes:
    """An ITI-18 FindDocuments request as a SOAP 1.2 envelope with WS-Addressing."""
    message_id, to, patient_id = (escape(v) for v in (message_id, to, patient_id))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="{SOAP12_NS}" xmlns:a="{WSA_NS}">
  <s:Header>
    <a:Action s:mustUnderstand="true">{ITI18_ACTION}</a:Action>
    <a:MessageID>{message_id}</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="true">{to}</a:To>
  </s:Header>
  <s:Body>
    <query:AdhocQueryRequest xmlns:query="{QUERY_NS}"
        xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
      <query:ResponseOption returnType="LeafClass" returnComposedObjects="true"/>
      <rim:AdhocQuery id="{FIND_DOCUMENTS}">
        <rim:Slot name="$XDSDocumentEntryPatientId">
          <rim:ValueList><rim:Value>'{patient_id}'</rim:Value></rim:ValueList>
        </rim:Slot>
        <rim:Slot name="$XDSDocumentEntryStatus">
          <rim:ValueList>
            <rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>
          </rim:ValueList>
        </rim:Slot>
      </rim:AdhocQuery>
    </query:AdhocQueryRequest>
  </s:Body>
</s:Envelope>
""".encode()


@dataclass(frozen=True)
class SoapOutcome:
    status: int
    action: str | None
    relates_to: str | None
    fault_code: str | None
    fault_reason: str | None
    body_root: str | None


def post_soap(session: requests.Session, gateway: Gateway, url: str, body: bytes) -> SoapOutcome:
    """POST a SOAP 1.2 envelope and read back the addressing headers and any fault."""
    resp = session.post(
        url,
        data=body,
        headers={"Content-Type": SOAP12_CONTENT_TYPE},
        verify=str(gateway.cert("ca.pem")),
        timeout=30,
    )
    if not resp.headers.get("Content-Type", "").startswith("application/soap+xml"):
        raise DemoFailed(f"HTTP {resp.status_code} with {resp.headers.get('Content-Type')!r}")
    env = parse_xml(resp.content)
    header = env.find(f"{{{SOAP12_NS}}}Header")
    body_el = env.find(f"{{{SOAP12_NS}}}Body")
    fault = body_el.find(f"{{{SOAP12_NS}}}Fault") if body_el is not None else None
    first = body_el[0] if body_el is not None and len(body_el) else None
    return SoapOutcome(
        status=resp.status_code,
        action=header.findtext(f"{{{WSA_NS}}}Action") if header is not None else None,
        relates_to=header.findtext(f"{{{WSA_NS}}}RelatesTo") if header is not None else None,
        fault_code=fault.findtext(f"{{{SOAP12_NS}}}Code/{{{SOAP12_NS}}}Value")
        if fault is not None
        else None,
        fault_reason=fault.findtext(f"{{{SOAP12_NS}}}Reason/{{{SOAP12_NS}}}Text")
        if fault is not None
        else None,
        body_root=first.tag if first is not None else None,
    )


def query_registry(gateway: Gateway, session: requests.Session) -> SoapOutcome:
    """Step 6: one ITI-18 round trip to /xds/registry.

    Expected: an AdhocQueryResponse under the reply action, or, until the
    registry is implemented, a SOAP Receiver fault saying so. Either way the
    reply must relate to our MessageID.
    """
    url = f"{gateway.base_url}/xds/registry"
    message_id = f"urn:uuid:{uuid.uuid4()}"
    print(f"  -> POST {url}")
    print(f"     wsa:Action {ITI18_ACTION}, wsa:MessageID {message_id}")
    outcome = post_soap(
        session, gateway, url, registry_stored_query(message_id, url, "DEMO-1^^^&1.2.3.4&ISO")
    )
    print(f"  <- HTTP {outcome.status}, wsa:Action {outcome.action}")
    print(f"     wsa:RelatesTo {outcome.relates_to}")
    if outcome.fault_code:
        print(f"     SOAP fault {outcome.fault_code}: {outcome.fault_reason}")
    if outcome.relates_to != message_id:
        raise DemoFailed("the reply does not relate to our MessageID")
    answered = (
        outcome.status == 200
        and outcome.action == ITI18_REPLY
        and outcome.body_root == f"{{{QUERY_NS}}}AdhocQueryResponse"
    )
    if answered:
        print("     AdhocQueryResponse: the registry answered the query")
        return outcome
    not_yet = (
        outcome.status == 500
        and (outcome.fault_code or "").endswith(":Receiver")
        and "not implemented" in (outcome.fault_reason or "")
    )
    if not not_yet:
        raise DemoFailed("expected an AdhocQueryResponse or a 'not implemented' Receiver fault")
    print("     (expected until the XDS registry lands: ITI-18 is routed, not implemented)")
    return outcome


def stop_server(gateway: Gateway, timeout: float = STOP_TIMEOUT_S) -> int:
    """Step 7: SIGTERM, then wait for gunicorn's graceful shutdown; return its status."""
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


def run(workdir: Path) -> None:
    """Every step against a community in ``workdir``; raises DemoFailed on the first surprise."""
    gateway: Gateway | None = None
    try:
        _step(1, "ihe-gateway init (a community with a development PKI and a database)")
        gateway = init_community(workdir / "demo-community", free_port())

        _step(2, f"ihe-gateway serve --config {gateway.config}")
        start_server(gateway)
        session = mtls_session(gateway)

        _step(3, f"waiting for {gateway.base_url}/healthz over mutual TLS")
        report = wait_until_ready(gateway, session)
        print(
            f"  database {report.get('database')}, status {report.get('status')}, "
            f"home community {report.get('home_community_id')}"
        )

        _step(4, "a client without a certificate")
        print(f"  refused at the TLS handshake: {refuse_without_certificate(gateway)}")

        _step(5, "GET /xds/registry?wsdl")
        print(f"  WSDL operations: {', '.join(fetch_wsdl(gateway, session, '/xds/registry'))}")

        _step(6, "ITI-18 Registry Stored Query (SOAP 1.2, WS-Addressing, mutual TLS)")
        query_registry(gateway, session)
        session.close()
    except BaseException:
        if gateway is not None and gateway.process is not None:
            stop_server(gateway)
            print("--- server log ---\n" + gateway.server_log(), file=sys.stderr)
        raise
    _step(7, "stopping the server (SIGTERM)")
    status = stop_server(gateway)
    if status != 0:
        print("--- server log ---\n" + gateway.server_log(), file=sys.stderr)
        raise DemoFailed(f"the server exited with status {status}")
    print("  stopped cleanly")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ihe-gateway-demo-"))
    try:
        run(workdir)
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDemo passed; removed {workdir}.")
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
    sys.exit(main())
