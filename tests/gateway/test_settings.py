"""[mllp] and [matching] in gateway.toml: defaults, every problem reported with its key, and
the matching settings reaching XCPD responding (a changed threshold changes the answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import ConfigError, config_from_dict
from gateway.settings import Mllp
from profiles.xcpd.matching import MatchConfig
from profiles.xcpd.response import parse_patient_discovery_response
from tests.conftest import make_config_dict
from tests.gateway.patients.conftest import sample_body
from tests.gateway.patients.test_soap import IPF, JIMMY, XCPD, post


def load(tmp_path: Path, **tables):
    data = make_config_dict(tmp_path / "data", f"sqlite:///{tmp_path / 'g.db'}")
    data.update(tables)
    return config_from_dict(data, base=tmp_path, environ={})


def problems(tmp_path: Path, **tables) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **tables)
    return caught.value.problems


def test_defaults(tmp_path):
    config = load(tmp_path)
    assert config.mllp == Mllp() and not config.mllp.enabled and config.mllp.tls
    assert config.matching == MatchConfig()


def test_values_are_read(tmp_path):
    config = load(tmp_path, mllp={"enabled": True, "tls": False, "port": 2600,
                                  "read_timeout_seconds": 5, "idle_timeout_seconds": 60,
                                  "max_message_bytes": 65536, "host": "0.0.0.0"},
                  matching={"threshold": 12.5, "margin": 0, "candidate_limit": 20,
                            "weights": {"family": [5, -2], "telecom": 3, "similar": 0.9}})
    assert config.mllp == Mllp(True, "0.0.0.0", 2600, False, 5.0, 60.0, 65536)
    m = config.matching
    assert (m.threshold, m.margin, m.candidate_limit) == (12.5, 0.0, 20)
    assert (m.weights.family, m.weights.telecom, m.weights.similar) == ((5.0, -2.0), 3.0, 0.9)
    assert m.weights.given == MatchConfig().weights.given


def test_every_problem_is_reported(tmp_path):
    found = problems(
        tmp_path,
        mllp={"enabled": True, "port": 70000, "read_timeout_seconds": 0, "colour": "red",
              "max_message_bytes": "big"},
        matching={"threshold": 0, "margin": -1, "candidate_limit": 0,
                  "weights": {"family": [1], "given": [-1, 2], "similar": 1.5, "city": -1,
                              "gender": "x", "unknown": 1}})
    assert set(found) == {
        "mllp.port: must be between 1 and 65535",
        "mllp.read_timeout_seconds: must be greater than zero",
        "mllp.max_message_bytes: expected int, got str",
        "mllp.colour: unknown key",
        "mllp.tls: TLS needs the [tls] section (certificate, key, trust store); add it, "
        "or set tls = false for development only",
        "matching.threshold: must be greater than zero",
        "matching.margin: must not be negative",
        "matching.candidate_limit: must be greater than zero",
        "matching.weights.family: expected [agreement, disagreement], two numbers",
        "matching.weights.given: agreement must be >= 0 and disagreement <= 0",
        "matching.weights.similar: a similarity, between 0 and 1",
        "matching.weights.city: must not be negative",
        "matching.weights.gender: expected [agreement, disagreement], two numbers",
        "matching.weights.unknown: unknown key",
    }


def test_similarity_bounds_in_order_and_ports_apart(tmp_path):
    assert problems(tmp_path, matching={"weights": {"dissimilar": 0.96}}) == [
        "matching.weights.dissimilar: must be below weights.similar"]
    assert problems(tmp_path, mllp={"enabled": True, "tls": False, "port": 8443}) == [
        "mllp.port: 8443 is the HTTPS port too"]


def discover(tmp_path: Path, **tables) -> str:
    config = load(tmp_path, **tables)
    app = create_app(config)
    app.extensions["gateway"].security = None  # XUA has its own tests
    try:
        assert app.extensions["gateway"].ports.matching == config.matching
        app.extensions["gateway"].ports.patients.add(JIMMY)
        reply, _ = post(app, "/xcpd", XCPD, sample_body(
            IPF + "xcpd-iti55-PRPA_IN201305UV02-request.xml", "PRPA_IN201305UV02"))
        return parse_patient_discovery_response(reply).query_response_code
    finally:
        app.extensions["gateway"].database.dispose()


def test_a_changed_threshold_changes_the_answer(tmp_path):
    assert discover(tmp_path / "a") == "OK"  # the default threshold matches Jimmy Jones
    assert discover(tmp_path / "b", matching={"threshold": 60}) == "NF"
