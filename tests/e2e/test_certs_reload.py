"""Live reload: a newly trusted partner CA is accepted and an untrusted one refused,
on a running ``ihe-gateway serve``, without a restart and without failing a request."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator

import pytest

from certs import authority
from gateway import demo
from tests.certs.support import Reload, accepted, certs_cli, context, serve_community
from tests.e2e.support import stop_gateway

pytestmark = pytest.mark.e2e
PARTNER = "urn:oid:1.3.6.1.4.1.99999.7"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[demo.Gateway]:
    gateway = serve_community(tmp_path_factory.mktemp("certs-reload") / "community")
    yield gateway
    stop_gateway(gateway)


def test_pid_file_names_the_running_server(served):
    pid = int((served.directory / "data" / "gateway.pid").read_text())
    assert pid == served.process.pid


def test_trusting_and_untrusting_a_partner_ca_applies_live(served, tmp_path):
    server_ca = tmp_path / "server-ca.pem"
    shutil.copy(served.cert("ca.pem"), server_ca)
    partner_ca = authority.create_authority("Partner exchange CA")
    partner = authority.issue(partner_ca, "partner gateway")
    partner.save(tmp_path / "partner.pem", tmp_path / "partner-key.pem")
    (tmp_path / "partner-ca.pem").write_bytes(partner_ca.certificate_pem())
    as_partner = context(server_ca, (tmp_path / "partner.pem", tmp_path / "partner-key.pem"))
    as_local = context(server_ca, (served.cert("client.pem"), served.cert("client-key.pem")))
    assert not accepted(served, as_partner)

    # A trusted client keeps calling while the workers are swapped: no request may fail.
    failures: list[int] = []
    calls = 0
    stop = threading.Event()

    def keep_calling() -> None:
        nonlocal calls
        while not stop.is_set():
            calls += 1
            if not accepted(served, as_local):
                failures.append(calls)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        with Reload(served):
            out = certs_cli(served, "trust", str(tmp_path / "partner-ca.pem"),
                            "--partner", PARTNER, "--name", "Partner")
        assert "signalled the running server" in out.stdout
    finally:
        stop.set()
        caller.join()
    assert calls > 0 and failures == []
    assert accepted(served, as_partner)
    assert accepted(served, as_local)

    listed = json.loads(certs_cli(served, "list", "--json").stdout)
    (row,) = [r for r in listed if "CN=Partner exchange CA" in r["subject"]]
    assert row["used_by"] == f"Partner ({PARTNER})" and row["role"] == "trusted CA"

    with Reload(served):
        certs_cli(served, "untrust", str(tmp_path / "partner-ca.pem"))
    assert not accepted(served, as_partner)
    assert accepted(served, as_local)
    assert served.process.poll() is None  # the same server all along
    backups = list((served.directory / "certs" / "backup").iterdir())
    assert len(backups) == 2
