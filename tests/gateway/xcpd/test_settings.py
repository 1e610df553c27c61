"""``[xcpd]`` in gateway.toml: discovery before XCA is on unless switched off; bad values
are reported with their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, config_from_dict
from tests.conftest import make_config_dict


def load(tmp_path: Path, **xcpd):
    raw = make_config_dict(tmp_path / "data", "sqlite://", **({"xcpd": xcpd} if xcpd else {}))
    return config_from_dict(raw, base=tmp_path, environ={})


def test_discovery_is_on_by_default_and_can_be_switched_off(tmp_path):
    assert load(tmp_path).xcpd.discovery is True
    assert load(tmp_path).xcpd.deadline_seconds == 30.0
    off = load(tmp_path, discovery=False, deadline_seconds=12)
    assert (off.xcpd.discovery, off.xcpd.deadline_seconds) == (False, 12.0)


def test_bad_values_are_reported_with_their_key(tmp_path):
    with pytest.raises(ConfigError) as found:
        load(tmp_path, discovery="yes", deadline_seconds=0, verify=True)
    assert set(found.value.problems) == {
        "xcpd.discovery: expected bool, got str",
        "xcpd.deadline_seconds: must be greater than zero",
        "xcpd.verify: unknown key",
    }
