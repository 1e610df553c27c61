"""``ihe-gateway serve`` with ``[mllp] enabled``: the PIX Manager's HL7 v2 listener runs beside
HTTPS over mutual TLS with the same certificate and trust store. The IPF and shared HL7 v2
samples get their ACK codes (AA, AE, AR); a client without a certificate is refused; the
listener applies a newly trusted CA on SIGHUP, is restarted when it dies, and stops with
the server."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import authority
from gateway import demo
from gateway.mllp import END_BLOCK, START_BLOCK, frame
from profiles.pix.hl7v2 import decode
from tests.certs.support import certs_cli
from tests.conftest import CONFORMANCE
from tests.e2e.support import client_context, server_env, stop_gateway

pytestmark = pytest.mark.e2e
IPF = CONFORMANCE / "messages" / "ipf"
SAMPLES = {  # sample -> MSA-1
    "pix-iti8-ADT_A01.hl7": "AA",
    "pix-iti8-ADT_A01-maximal.hl7": "AA",
    "pix-iti8-ADT_A04.hl7": "AA",
    "pix-iti8-ADT_A08.hl7": "AA",
    "pix-iti8-ADT_A40-merge.hl7": "AA",
    "pix-iti8-ADT_A40-merge_multi-id.hl7": "AA",
    "pix-iti8-ADT_A01-incomplete_no-PID.hl7": "AE",
    "pix-iti8-ADT_A01_sap-ish.hl7": "AE",
    "pix-iti9-QBP_Q23-request.hl7": "AE",  # a domain the index does not know
    "../../hl7v2/ipf_adt-A10_not-an-ITI-8-trigger.hl7": "AR",
    "../../hl7v2/ipf_pix-iti8-ADT_A40_msgstruct-ADT_A39.hl7": "AA",
    "../../hl7v2/ipf_pix-iti8-ADT_A40-merge_iso-8859-1.hl7": "AA",
}
WAIT_S = 30.0
PARTNER = "urn:oid:1.3.6.1.4.1.99999.8"


def talk(port: int, context: ssl.SSLContext, messages: list[bytes]) -> list[bytes]:
    """Send each message framed over one TLS connection; its answers, in order."""
    answers, pending = [], b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        for message in messages:
            tls.sendall(frame(message))
            while END_BLOCK not in pending:
                chunk = tls.recv(65536)
                if not chunk:
                    raise ConnectionError("closed without an answer")
                pending += chunk
            answer, _, pending = pending.partition(END_BLOCK)
            answers.append(answer[answer.index(START_BLOCK) + 1:])
    return answers


def answering(port: int, context: ssl.SSLContext) -> bool:
    try:
        return bool(talk(port, context, [(IPF / "pix-iti8-ADT_A04.hl7").read_bytes()]))
    except OSError:
        return False


def wait_until(predicate, what: str) -> None:
    deadline, delay = time.monotonic() + WAIT_S, 0.02
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {WAIT_S:.0f} s")
        time.sleep(delay)  # polling a process from outside: no event to await
        delay = min(delay * 2, 0.25)


def listener_pids(master: int) -> list[int]:
    """The master's children running gateway.mllp_service (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master and b"gateway.mllp_service" in command:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory, e2e_database_url) -> Iterator[tuple[demo.Gateway, int]]:
    env = server_env(e2e_database_url)
    gateway = demo.init_community(tmp_path_factory.mktemp("mllp") / "community",
                                  demo.free_port(), env=env)
    port = demo.free_port()
    with gateway.config.open("a", encoding="utf-8") as f:
        f.write(f"\n[mllp]\nenabled = true\nport = {port}\nidle_timeout_seconds = 30\n")
    demo.start_server(gateway, env=env, extra_args=("--workers", "1"))
    session = demo.mtls_session(gateway)
    try:
        demo.wait_until_ready(gateway, session)
        wait_until(lambda: answering(port, trusted(gateway)), "the MLLP listener answers")
    except BaseException:
        demo.stop_server(gateway)
        raise
    finally:
        session.close()
    yield gateway, port
    if gateway.process is not None and gateway.process.poll() is None:
        stop_gateway(gateway)


def trusted(gateway: demo.Gateway) -> ssl.SSLContext:
    return client_context(gateway, (gateway.cert("client.pem"), gateway.cert("client-key.pem")))


def test_samples_are_answered_over_mutual_tls(served):
    gateway, port = served
    messages = [(IPF / name).read_bytes() for name in SAMPLES]
    answers = talk(port, trusted(gateway), messages)
    assert [decode(a).get("MSA", 1) for a in answers] == list(SAMPLES.values())
    for message, answer in zip(messages, answers, strict=True):
        assert decode(answer).get("MSA", 2) == decode(message).control_id


def test_a_client_without_a_certificate_is_refused(served):
    gateway, port = served
    with pytest.raises((ssl.SSLError, ConnectionError)):
        talk(port, client_context(gateway), [(IPF / "pix-iti8-ADT_A04.hl7").read_bytes()])


def test_a_newly_trusted_ca_applies_after_sighup(served, tmp_path):
    """``certs trust`` signals the master (SIGHUP); the listener re-reads its trust store."""
    gateway, port = served
    master = gateway.process.pid
    (child,) = listener_pids(master)
    partner_ca = authority.create_authority("Partner exchange CA")
    authority.issue(partner_ca, "partner feeder").save(tmp_path / "p.pem", tmp_path / "p.key")
    (tmp_path / "partner-ca.pem").write_bytes(partner_ca.certificate_pem())
    as_partner = client_context(gateway, (tmp_path / "p.pem", tmp_path / "p.key"))
    assert not answering(port, as_partner)
    reloads = gateway.server_log().count("mllp listener reloaded")
    certs_cli(gateway, "trust", str(tmp_path / "partner-ca.pem"), "--partner", PARTNER,
              "--name", "Partner")
    wait_until(lambda: gateway.server_log().count("mllp listener reloaded") > reloads,
               "the listener reloads")
    assert listener_pids(master) == [child]  # the same process, listening anew
    assert answering(port, as_partner) and answering(port, trusted(gateway))


def test_a_dead_listener_is_restarted(served):
    gateway, port = served
    master = gateway.process.pid
    (child,) = listener_pids(master)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: listener_pids(master) not in ([], [child]), "a new listener starts")
    wait_until(lambda: answering(port, trusted(gateway)), "the new listener answers")
    assert "mllp listener exited" in gateway.server_log()


def test_the_listener_stops_with_the_server(served):
    gateway, port = served
    master = gateway.process.pid
    (child,) = listener_pids(master)
    stop_gateway(gateway)
    assert not Path(f"/proc/{child}").exists() or b"Z" in Path(f"/proc/{child}/stat").read_bytes()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
