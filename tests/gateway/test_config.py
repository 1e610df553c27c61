"""gateway.toml loading: defaults, environment override, and every problem reported."""

from pathlib import Path

import pytest

from gateway.config import ConfigError, config_from_dict, load_config


def test_minimal_config_gets_defaults(tmp_path: Path):
    cfg = config_from_dict({"community": {"home_community_id": "1.2.3"}}, base=tmp_path, environ={})
    assert cfg.community.home_community_id == "urn:oid:1.2.3"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    assert cfg.has_role("registry") and cfg.has_role("responding_gateway")
    assert cfg.tls is None
    assert cfg.limits.max_message_bytes == 50 * 1024 * 1024


def test_urn_oid_prefix_is_accepted(tmp_path: Path):
    cfg = config_from_dict(
        {"community": {"home_community_id": "urn:oid:2.16.840.1.113883.3.1"}},
        base=tmp_path,
        environ={},
    )
    assert cfg.community.oid == "2.16.840.1.113883.3.1"


def test_environment_overrides_database_url(tmp_path: Path):
    cfg = config_from_dict(
        {"community": {"home_community_id": "1.2.3"}, "database": {"url": "sqlite:///x.db"}},
        base=tmp_path,
        environ={"GATEWAY_DATABASE_URL": "postgresql+psycopg://u@h/db"},
    )
    assert cfg.database_url == "postgresql+psycopg://u@h/db"


def test_every_problem_is_reported_with_its_key(tmp_path: Path):
    bad = {
        "community": {"home_community_id": "not-an-oid", "colour": "blue"},
        "server": {"port": 70000, "workers": "two"},
        "roles": {"registry": "yes"},
        "limits": {"max_message_bytes": -1},
        "database": {"url": "mysql://x"},
        "tls": {"certificate": "missing.pem", "private_key": "k.pem", "trust_store": "ca.pem"},
        "partners": [{"home_community_id": "1.2", "url": "http://plain"}],
        "audit": {"destinations": [{"transport": "carrier-pigeon", "host": "a"}]},
        "surprise": 1,
    }
    with pytest.raises(ConfigError) as exc:
        config_from_dict(bad, base=tmp_path, environ={})
    text = "\n".join(exc.value.problems)
    for expected in (
        "community.home_community_id: not an OID",
        "community.colour: unknown key",
        "server.port: must be between 1 and 65535",
        "server.workers: expected int, got str",
        "roles.registry: expected bool, got str",
        "limits.max_message_bytes: must be greater than zero",
        "database.url: only sqlite:// and postgresql://",
        "tls.certificate: file not found",
        "partners[0]: endpoint ITI-38: 'http://plain/xca/query' is not an https:// URL",
        "partners[0].name",  # not required; must not be reported
        "audit.destinations[0].transport: must be 'tls' or 'udp'",
        "surprise: unknown key",
    ):
        if expected == "partners[0].name":
            assert expected not in text
        else:
            assert expected in text, expected


def test_missing_required_key(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({}, base=tmp_path, environ={})
    assert "community.home_community_id: required" in exc.value.problems


def test_boolean_is_not_an_int(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(
            {"community": {"home_community_id": "1.2"}, "server": {"port": True}},
            base=tmp_path,
            environ={},
        )
    assert "server.port: expected int, got a boolean" in exc.value.problems


def test_load_config_reports_bad_toml_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "gateway.toml"
    broken.write_text("[community\nhome_community_id = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_relative_paths_resolve_against_the_file(tmp_path: Path):
    (tmp_path / "certs").mkdir()
    for name in ("g.pem", "k.pem", "ca.pem"):
        (tmp_path / "certs" / name).write_text("x")
    f = tmp_path / "gateway.toml"
    f.write_text(
        '[community]\nhome_community_id = "1.2.3"\n'
        '[tls]\ncertificate = "certs/g.pem"\nprivate_key = "certs/k.pem"\n'
        'trust_store = "certs/ca.pem"\n'
    )
    cfg = load_config(f, environ={})
    assert cfg.tls is not None and cfg.tls.certificate == tmp_path / "certs" / "g.pem"
    assert cfg.source == f


def test_xua_table_and_partner_quirks(tmp_path: Path):
    cfg = config_from_dict(
        {
            "community": {"home_community_id": "1.2.3"},
            "xua": {"clock_skew_seconds": 60, "audience": ["https://gw.example"]},
            "partners": [
                {
                    "home_community_id": "1.2.4",
                    "url": "https://p.example",
                    "quirks": {"signature_hash": "sha1", "purpose_element": "PurposeForUse"},
                }
            ],
        },
        base=tmp_path,
        environ={},
    )
    assert cfg.xua.clock_skew_seconds == 60 and cfg.xua.audience == ("https://gw.example",)
    assert cfg.xua.required_on_partner_endpoints is True
    assert cfg.partners[0].allow_sha1 and cfg.partners[0].purpose_for_use
    assert not cfg.partners[0].allow_bearer
    assert cfg.partners[0].endpoint("ITI-38") == "https://p.example/xca/query"


def test_partner_problems_name_the_entry(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(
            {
                "community": {"home_community_id": "1.2.3"},
                "partners": [
                    {"home_community_id": "1.2.4", "url": "https://p", "colour": 1},
                    {"url": "https://q"},
                    {"home_community_id": "1.2.5", "url": "https://r",
                     "quirks": {"signature_hash": "md5"}},
                ],
            },
            base=tmp_path,
            environ={},
        )
    text = "\n".join(exc.value.problems)
    assert "partners[0]: unknown key(s) colour" in text
    assert "partners[1]: home_community_id: required" in text
    assert "partners[2]: quirks.signature_hash: must be one of" in text


def test_xua_bad_values_are_reported(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(
            {
                "community": {"home_community_id": "1.2.3"},
                "xua": {"clock_skew_seconds": -1, "audience": [1], "colour": "x"},
            },
            base=tmp_path,
            environ={},
        )
    text = "\n".join(exc.value.problems)
    assert "xua.clock_skew_seconds: must not be negative" in text
    assert "xua.audience: must be a list of strings" in text
    assert "xua.colour: unknown key" in text


def test_ccda_table_is_checked(tmp_path: Path):
    cfg = config_from_dict(
        {"community": {"home_community_id": "1.2.3"}, "ccda": {"strict": True}},
        base=tmp_path,
        environ={},
    )
    assert cfg.ccda.strict is True
    with pytest.raises(ConfigError) as exc:
        config_from_dict(
            {"community": {"home_community_id": "1.2.3"}, "ccda": {"strict": "yes"}},
            base=tmp_path,
            environ={},
        )
    assert any(p.startswith("ccda: ") for p in exc.value.problems)


def test_registry_result_limit(tmp_path: Path):
    cfg = config_from_dict(
        {"community": {"home_community_id": "1.2.3"}, "registry": {"max_results": 5}},
        base=tmp_path,
        environ={},
    )
    assert cfg.registry.max_results == 5
    with pytest.raises(ConfigError) as exc:
        config_from_dict(
            {"community": {"home_community_id": "1.2.3"}, "registry": {"max_results": 0}},
            base=tmp_path,
            environ={},
        )
    assert "registry.max_results: must be greater than zero" in exc.value.problems
