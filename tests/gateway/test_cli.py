"""``ihe-gateway``: init, check-config, db upgrade, and serve up to the point it would listen.

The served gateway itself is tested over real HTTPS in tests/e2e/.
"""

from __future__ import annotations

import math
import ssl
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cryptography import x509

from gateway import community, server
from gateway.cli import main
from gateway.config import DATABASE_ENV, load_config
from gateway.store import migrate

PKI = [
    "certs/ca.pem",
    "certs/ca-key.pem",
    "certs/gateway.pem",
    "certs/gateway-key.pem",
    "certs/client.pem",
    "certs/client-key.pem",
]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """PostgreSQL through GATEWAY_DATABASE_URL when the suite runs on it, else the
    community's own SQLite file (the variable unset)."""
    if database_url.startswith("postgresql"):
        monkeypatch.setenv(DATABASE_ENV, database_url)
        return database_url
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    return None


@pytest.fixture
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve() configures the root logger for a server process; not inside pytest."""
    monkeypatch.setattr(server, "configure_logging", lambda: None)


def _init(runner: CliRunner, directory: Path, *args: str):
    return runner.invoke(main, ["init", str(directory), *args], catch_exceptions=False)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- init -------------------------------------------------------------------------------------


def test_init_writes_a_community_that_loads(tmp_path, runner, db_env):
    d = tmp_path / "acme"
    result = _init(
        runner, d, "--community-id", "urn:oid:1.2.3.4", "--name", 'Acme "HIE" é', "--port", "9443"
    )
    assert result.exit_code == 0, result.output
    assert "urn:oid:1.2.3.4" in result.output
    assert f"--cacert {d / 'certs' / 'ca.pem'} https://localhost:9443/healthz" in result.output

    for f in ["gateway.toml", *PKI]:
        assert (d / f).is_file(), f
    for key in ("ca-key.pem", "gateway-key.pem", "client-key.pem"):
        assert stat.S_IMODE((d / "certs" / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "data").stat().st_mode) == 0o700

    cfg = load_config(d / "gateway.toml")
    assert cfg.community.oid == "1.2.3.4"
    assert cfg.community.name == 'Acme "HIE" é'
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 9443)
    assert cfg.tls.certificate == d / "certs" / "gateway.pem"
    assert cfg.tls.private_key == d / "certs" / "gateway-key.pem"
    assert cfg.tls.trust_store == d / "certs" / "trust.pem"
    assert cfg.data_dir == d / "data"
    assert cfg.roles == frozenset(community.ROLE_NAMES)

    ca = _cert(d / "certs" / "ca.pem")
    for leaf in ("gateway.pem", "client.pem"):
        _cert(d / "certs" / leaf).verify_directly_issued_by(ca)
    assert "DEVELOPMENT CA - NOT FOR PRODUCTION" in ca.subject.rfc4514_string()

    assert migrate.current(cfg.database_url) == migrate.head()
    if db_env is None:
        assert cfg.database_url == f"sqlite:///{d / 'data' / 'gateway.db'}"
        assert (d / "data" / "gateway.db").is_file()
    else:
        assert cfg.database_url == db_env
        assert not (d / "data" / "gateway.db").exists()


def test_init_defaults_name_and_makes_a_fresh_oid(tmp_path, runner, db_env):
    d = tmp_path / "springfield"
    assert _init(runner, d).exit_code == 0
    cfg = load_config(d / "gateway.toml")
    assert cfg.community.name == "springfield"
    assert cfg.server.port == 8443
    arc, _, number = cfg.community.oid.partition("2.25.")
    assert arc == "" and 0 < int(number) < 2**128
    assert len(cfg.community.oid) <= 64  # XDS limits OIDs to 64 characters
    assert community.new_community_id() != community.new_community_id()


def test_init_refuses_to_overwrite_a_community(tmp_path, runner, db_env):
    d = tmp_path / "c"
    assert _init(runner, d).exit_code == 0
    before = {f: (d / f).read_bytes() for f in ["gateway.toml", *PKI]}
    again = _init(runner, d, "--name", "other")
    assert again.exit_code == 1
    assert "already holds a community" in again.output
    assert {f: (d / f).read_bytes() for f in before} == before


def test_init_refuses_a_folder_holding_part_of_a_community(tmp_path, runner):
    d = tmp_path / "c"
    (d / "certs").mkdir(parents=True)
    (d / "certs" / "gateway-key.pem").write_text("someone's key")
    result = _init(runner, d)
    assert result.exit_code == 1 and "certs/gateway-key.pem" in result.output
    assert (d / "certs" / "gateway-key.pem").read_text() == "someone's key"
    assert not (d / "gateway.toml").exists()


def test_init_accepts_an_empty_existing_folder(tmp_path, runner, db_env):
    d = tmp_path / "empty"
    d.mkdir()
    assert _init(runner, d).exit_code == 0
    assert (d / "gateway.toml").is_file()


@pytest.mark.parametrize("bad", ["1.2.abc", "urn:oid:", "3.1", "1..2"])
def test_init_rejects_a_bad_oid(tmp_path, runner, bad):
    result = _init(runner, tmp_path / "c", "--community-id", bad)
    assert result.exit_code == 2 and "not an OID" in result.output
    assert not (tmp_path / "c").exists()


def test_init_removes_what_it_wrote_when_it_fails(tmp_path, runner, db_env, monkeypatch):
    def broken(url: str) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(community, "_migrate", broken)
    d = tmp_path / "c"
    with pytest.raises(RuntimeError, match="database down"):
        community.init_community(d, port=8443)
    assert not d.exists()
    monkeypatch.undo()
    if db_env:
        monkeypatch.setenv(DATABASE_ENV, db_env)
    assert _init(runner, d).exit_code == 0  # a second try starts clean


# --- check-config -----------------------------------------------------------------------------


def test_check_config_accepts_what_init_wrote(tmp_path, runner, db_env):
    d = tmp_path / "c"
    _init(runner, d, "--community-id", "1.2.3")
    result = runner.invoke(main, ["check-config", "--config", str(d / "gateway.toml")])
    assert result.exit_code == 0
    assert "ok (community urn:oid:1.2.3" in result.output


def test_check_config_prints_every_problem(tmp_path, runner):
    path = tmp_path / "gateway.toml"
    path.write_text(
        """
[community]
home_community_id = "not-an-oid"
nickname = "x"

[server]
port = 0

[tls]
certificate = "missing.pem"
private_key = "missing-key.pem"
trust_store = "ca.pem"

[roles]
registry = "yes"
"""
    )
    result = runner.invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for expected in (
        "community.home_community_id: not an OID",
        "community.nickname: unknown key",
        "server.port: must be between 1 and 65535",
        "tls.certificate: file not found: missing.pem",
        "tls.private_key: file not found: missing-key.pem",
        "tls.trust_store: file not found: ca.pem",
        "roles.registry: expected bool, got str",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    assert len(problems) == 7


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no such file"), ("[community\n", "not valid TOML")]
)
def test_check_config_unreadable_file(tmp_path, runner, content, message):
    path = tmp_path / "gateway.toml"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2 and message in result.stderr


# --- --help -----------------------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


ALL_COMMANDS = list(_commands(main))


def test_the_expected_commands_exist():
    for cmd in [("init",), ("check-config",), ("serve",), ("db",), ("db", "upgrade")]:
        assert cmd in ALL_COMMANDS


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "ihe-gateway")
def test_every_command_has_help(runner, command):
    result = runner.invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {' '.join(command)}".rstrip())
    assert "--help" in result.output


# --- db upgrade -------------------------------------------------------------------------------


def test_db_upgrade_migrates_to_head(tmp_path, runner, database_url, monkeypatch):
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[community]\nhome_community_id = "1.2.3"\n[database]\nurl = "{database_url}"\n'
    )
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "base")
    assert migrate.current(database_url) is None
    result = runner.invoke(main, ["db", "upgrade", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "latest revision" in result.output
    assert migrate.current(database_url) == migrate.head()


def test_db_upgrade_refuses_a_bad_config(tmp_path, runner):
    path = tmp_path / "gateway.toml"
    path.write_text("[community]\n")
    result = runner.invoke(main, ["db", "upgrade", "--config", str(path)])
    assert result.exit_code == 2 and "community.home_community_id: required" in result.stderr


# --- serve, up to the point where gunicorn would start -------------------------------------------


@pytest.fixture
def initialised(tmp_path, runner, db_env) -> Path:
    d = tmp_path / "c"
    assert _init(runner, d).exit_code == 0
    return d


@pytest.fixture
def no_gunicorn(monkeypatch) -> list[server.GatewayApplication]:
    """Record the application serve() would run instead of running it."""
    started: list[server.GatewayApplication] = []
    monkeypatch.setattr(server.GatewayApplication, "run", lambda self: started.append(self))
    return started


def test_serve_refuses_a_key_that_is_not_the_certificates(
    initialised, runner, no_gunicorn, no_logging_setup
):
    key = initialised / "certs" / "gateway-key.pem"
    key.write_bytes((initialised / "certs" / "client-key.pem").read_bytes())
    result = runner.invoke(main, ["serve", "--config", str(initialised / "gateway.toml")])
    assert result.exit_code == 1
    assert "cannot use the TLS files" in result.output
    assert no_gunicorn == []


def test_serve_without_tls_needs_http(tmp_path, runner, no_gunicorn, no_logging_setup, db_env):
    path = tmp_path / "gateway.toml"
    path.write_text('[community]\nhome_community_id = "1.2.3"\n')
    result = runner.invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 1 and "no [tls] section" in result.output
    assert no_gunicorn == []

    result = runner.invoke(main, ["serve", "--config", str(path), "--http"])
    assert result.exit_code == 0, result.output
    assert "WARNING: serving PLAIN HTTP" in result.stderr
    (app,) = no_gunicorn
    assert app.cfg.certfile is None and not app.cfg.is_ssl


def test_serve_configures_gunicorn_for_mutual_tls(
    initialised, runner, no_gunicorn, no_logging_setup
):
    config_path = str(initialised / "gateway.toml")
    result = runner.invoke(
        main, ["serve", "--config", config_path, "--port", "9999", "--workers", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.stderr
    (app,) = no_gunicorn
    cfg = app.cfg
    config = load_config(initialised / "gateway.toml")
    assert cfg.bind == ["127.0.0.1:9999"]
    assert cfg.workers == 3
    assert cfg.worker_class_str == "gthread" and cfg.threads == config.server.threads
    assert cfg.is_ssl
    assert cfg.certfile == str(config.tls.certificate)
    assert cfg.keyfile == str(config.tls.private_key)
    assert cfg.ca_certs == str(config.tls.trust_store)
    assert cfg.cert_reqs == ssl.CERT_REQUIRED
    assert cfg.timeout == math.ceil(config.limits.request_timeout_seconds)
    assert cfg.preload_app is False
    assert cfg.control_socket_disable is True
    # The app is built in the worker, from the loaded configuration.
    assert app.gateway_config == config


def test_gunicorn_bind_brackets_ipv6(initialised):
    config = load_config(initialised / "gateway.toml")
    v6 = type(config.server)(host="::1", port=8443)
    options = server.gunicorn_options(type(config)(**{**config.__dict__, "server": v6}))
    assert options["bind"] == ["[::1]:8443"]


def test_server_tls_context_is_strict(initialised):
    context = server.server_context(load_config(initialised / "gateway.toml").tls)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    for cipher in tls12:
        assert cipher["kea"] in ("kx-ecdhe", "kx-dhe"), cipher["name"]  # forward secrecy
        assert cipher["aead"], cipher["name"]


def test_tls_context_hook_builds_once_per_process(initialised, monkeypatch):
    built: list[ssl.SSLContext] = []

    def factory() -> ssl.SSLContext:
        built.append(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        return built[-1]

    monkeypatch.setattr(server, "_contexts", {})
    first = server.tls_context(None, factory)
    assert server.tls_context(None, factory) is first and len(built) == 1
    assert first.verify_mode == ssl.CERT_REQUIRED
    monkeypatch.setattr(server.os, "getpid", lambda: -1)  # as in a worker a reload started
    assert server.tls_context(None, factory) is not first and len(built) == 2


def test_a_reload_keeps_the_running_configuration_when_the_new_one_is_unusable(initialised):
    path = initialised / "gateway.toml"
    config = load_config(path)
    app = server.GatewayApplication(config, config_path=path)
    good = path.read_text()
    for broken in ("[community\n", good.replace("[tls]", "[unused]").split("[unused]")[0]):
        path.write_text(broken)
        app.reload()  # what gunicorn's arbiter calls on SIGHUP
        assert app.gateway_config is config
        assert app.cfg.is_ssl and app.cfg.ca_certs == str(config.tls.trust_store)

    path.write_text(good.replace('name = "c"', 'name = "renamed"'))
    app.reload()
    assert app.gateway_config.community.name == "renamed"
