"""XUA over real HTTPS, accepted side: valid assertions shaped like CONNECT's and IPF's,
sent to ``/xca/query`` of a served gateway, get past the gate; test_xua_attacks.py sends
every attack of ../shared/notes/security.md and checks each refusal. Messages and
checks: xua_support.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.xua_support import MIN, assert_accepted, connect, ipf

pytestmark = pytest.mark.e2e


# --- accepted ------------------------------------------------------------------------------


def test_connect_shaped_assertion_is_accepted(gateway, session, members):
    assert_accepted(gateway, session, connect(members))


def test_ipf_shaped_assertion_signed_by_another_ca_certificate_is_accepted(
    gateway, session, members
):
    assert_accepted(gateway, session, ipf(members))


def test_clock_skew_of_four_minutes_is_tolerated(gateway, session, members):
    assert_accepted(gateway, session, connect(members, conditions=(-20 * MIN, -4 * MIN)))
