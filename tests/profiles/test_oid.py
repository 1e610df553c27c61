"""The one OID check and the liberties each caller allows: strict X.660 by default."""

from __future__ import annotations

import pytest

from profiles.oid import is_oid


@pytest.mark.parametrize(
    ("value", "strict", "any_first_arc", "lenient"),
    [
        ("1.2.3", True, True, True),
        ("2.16.840.1.113883.3.9621", True, True, True),
        ("0.0", True, True, True),
        ("3.1", False, True, True),  # first arc above 2
        ("10.1", False, True, True),
        ("1.02.3", False, False, True),  # a leading zero
        ("1", False, False, False),  # one arc
        ("1..2", False, False, False),
        ("1.2.", False, False, False),
        ("1.2\n", False, False, False),
        ("1.٢", False, False, False),  # a non-ASCII digit
        ("urn:oid:1.2", False, False, False),
        ("", False, False, False),
        (None, False, False, False),
    ],
)
def test_strictness(value, strict, any_first_arc, lenient):
    assert is_oid(value) is strict
    assert is_oid(value, allow_any_first_arc=True) is any_first_arc
    assert is_oid(value, allow_any_first_arc=True, allow_leading_zeros=True) is lenient


def test_urn_prefix_only_where_allowed():
    assert is_oid("urn:oid:1.2.3", allow_urn_prefix=True)
    assert is_oid("1.2.3", allow_urn_prefix=True)
    assert not is_oid("urn:oid:", allow_urn_prefix=True)
    assert not is_oid("URN:OID:1.2.3", allow_urn_prefix=True)  # as the config reader had it


def test_max_length_counts_the_bare_oid():
    sixty_four = "1." + "1" * 62
    assert is_oid(sixty_four, max_length=64)
    assert not is_oid(sixty_four + "1", max_length=64)
    assert is_oid("urn:oid:" + sixty_four, allow_urn_prefix=True, max_length=64)
