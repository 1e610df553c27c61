"""``serve --http`` (warning, plain HTTP), SIGHUP reload, SIGTERM, and ``make demo``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.support import server_env, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e

RELOAD_WAIT_S = 30.0


def test_plain_http_warns_and_reloads_on_sighup(tmp_path, e2e_database_url):
    gateway = start_gateway(tmp_path / "plain", e2e_database_url, "--http")
    try:
        log = gateway.server_log()
        assert "WARNING: serving PLAIN HTTP" in log
        s = requests.Session()
        s.trust_env = False
        # A new connection per request: a kept-alive one would stay with an old worker.
        s.headers["Connection"] = "close"
        assert s.get(f"{gateway.base_url}/healthz", timeout=10).json()["status"] == "ok"
        assert s.get(f"{gateway.base_url}/xds/registry?wsdl", timeout=10).status_code == 200

        # Switch the registry off and reload: new workers serve the new configuration.
        text = gateway.config.read_text()
        assert "registry = true" in text
        gateway.config.write_text(text.replace("registry = true", "registry = false"))
        gateway.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_WAIT_S
        while s.get(f"{gateway.base_url}/xds/registry?wsdl", timeout=10).status_code != 404:
            assert time.monotonic() < deadline, "the reload did not take effect"
            time.sleep(0.1)
        assert s.get(f"{gateway.base_url}/xds/repository?wsdl", timeout=10).status_code == 200

        # A broken file on reload is refused; the running configuration stays.
        gateway.config.write_text("[community\n")
        gateway.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_WAIT_S
        while "reload refused" not in gateway.server_log():
            assert time.monotonic() < deadline, gateway.server_log()
            time.sleep(0.1)
        assert gateway.process.poll() is None
        assert s.get(f"{gateway.base_url}/healthz", timeout=10).status_code == 200
        s.close()
    finally:
        stop_gateway(gateway)


def test_make_demo_succeeds(e2e_database_url):
    """``python -m gateway.demo`` is what ``make demo`` runs; it must pass here too."""
    env = server_env(e2e_database_url)
    env.pop("GATEWAY_DATABASE_URL", None)  # the demo makes its own SQLite community
    result = subprocess.run(
        [sys.executable, "-m", "gateway.demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "refused at the TLS handshake" in out
    assert "wsa:Action urn:ihe:iti:2007:RegistryStoredQuery" in out
    assert "stopped cleanly" in out and "Demo passed" in out
