"""Chain verification with a purpose, against PKIs built here."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certs.verify import ChainError, verify_chain
from tests.certs import pki


@pytest.fixture(scope="module")
def root():
    return pki.make("Test root", ca=True)


@pytest.fixture(scope="module")
def inter(root):
    return pki.make("Test intermediate", root, ca=True)


def test_a_full_chain_verifies_for_both_purposes(root, inter):
    leaf = pki.make("gw", inter)
    for purpose in ("client", "server"):
        chain = verify_chain(leaf.certificate, [inter.certificate], [root.certificate],
                             purpose=purpose)
        assert chain == [leaf.certificate, inter.certificate, root.certificate]


def test_broken_chain_missing_intermediate(root, inter):
    leaf = pki.make("gw", inter)
    with pytest.raises(ChainError, match="does not chain to a trusted CA"):
        verify_chain(leaf.certificate, [], [root.certificate])


def test_another_root_is_refused(inter):
    other = pki.make("Other root", ca=True)
    leaf = pki.make("gw", inter)
    with pytest.raises(ChainError):
        verify_chain(leaf.certificate, [inter.certificate], [other.certificate])


def test_expired_and_not_yet_valid(root):
    expired = pki.make("old", root, start=pki.NOW - timedelta(days=30),
                       end=pki.NOW - timedelta(days=1))
    with pytest.raises(ChainError, match="expired on"):
        verify_chain(expired.certificate, [], [root.certificate])
    future = pki.make("future", root, start=pki.NOW + timedelta(days=2))
    with pytest.raises(ChainError, match="not valid before"):
        verify_chain(future.certificate, [], [root.certificate])


def test_expired_intermediate_is_named(root):
    lapsed = pki.make("Lapsed intermediate", root, ca=True, start=pki.NOW - timedelta(days=9),
                      end=pki.NOW - timedelta(days=1))
    leaf = pki.make("gw", lapsed)
    with pytest.raises(ChainError, match="Lapsed intermediate.*expired"):
        verify_chain(leaf.certificate, [lapsed.certificate], [root.certificate])


def test_wrong_purpose(root):
    server_only = pki.make("server only", root, eku=(pki.SERVER,))
    verify_chain(server_only.certificate, [], [root.certificate], purpose="server")
    with pytest.raises(ChainError, match="not for TLS client"):
        verify_chain(server_only.certificate, [], [root.certificate], purpose="client")


def test_pinned_leaf_is_its_own_anchor(root):
    leaf = pki.make("pinned", root)
    assert verify_chain(leaf.certificate, [], [leaf.certificate]) == [leaf.certificate]
    with pytest.raises(ChainError, match="no CA"):
        verify_chain(pki.make("other", root).certificate, [], [leaf.certificate])
