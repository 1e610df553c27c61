"""Inbound trust for partners registered with the CLI: their CA in the TLS trust store.

``partners add --ca`` stores the partner in the database, where the XUA gate's
identity check (certificate <-> homeCommunityId) finds it within seconds, and adds
its CA to ``[tls] trust_store`` through ``certs.changes`` (backup first, a manifest
binding to the partner), so the TLS handshake admits its certificates.
``partners remove`` takes out what ``partners add`` brought in, unless another
partner still names the certificate; a CA the operator trusted some other way
(``certs trust``, an edited bundle) is never taken out. The CLI audits each change
and signals a running server (SIGHUP), whose new workers handshake with the new
trust store: ``certs.cli._finish``, as for ``certs trust``.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509

from certs import changes
from certs.inventory import Manifest, fingerprint, read_certificates
from gateway.partners.model import Partner

ORIGIN = "partners add"


def certificates(partner: Partner) -> list[x509.Certificate]:
    """The CA(s) or pinned certificates a partner's ``ca`` names (none: an empty list)."""
    if not partner.ca_pem:
        return []
    return list(x509.load_pem_x509_certificates(partner.ca_pem))


def label(partner: Partner) -> str:
    return f"{partner.name} ({partner.home_community_id})" if partner.name else (
        partner.home_community_id)


def layout_of(config) -> changes.Layout | None:
    """Where the trust store is; None for a gateway without ``[tls]`` (nothing to trust)."""
    return changes.Layout.of(config) if getattr(config, "tls", None) is not None else None


@contextmanager
def _serialised(layout: changes.Layout) -> Iterator[None]:
    """One trust-store change at a time (two ``partners add`` run together lose none)."""
    lock = Path(layout.directory) / ".trust.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def trust_partner(layout: changes.Layout, partner: Partner) -> str:
    """Trust ``partner``'s certificates for inbound TLS; raises changes.ChangeRefused."""
    certs = certificates(partner)
    with _serialised(layout):
        return changes.trust(layout, certs, partner=label(partner), origin=ORIGIN)


def release_partner(
    layout: changes.Layout, partner: Partner, remaining: Sequence[Partner]
) -> str | None:
    """Untrust what ``partners add`` brought in for ``partner`` and no ``remaining`` one names.

    A certificate still named by another partner stays, its binding passed on to
    that partner. Returns the change made, or None when the store is unchanged.
    """
    users = {fingerprint(c): p for p in remaining for c in certificates(p)}
    with _serialised(layout):
        manifest = Manifest.load(layout.directory)
        current = read_certificates(layout.trust_store)
        gone, rebound = [], False
        for cert in certificates(partner):
            fp = fingerprint(cert)
            binding = manifest.bindings.get(fp)
            if binding is None or binding.get("origin") != ORIGIN:
                continue  # trusted by the operator, not by partners add
            if fp in users:
                if binding.get("partner") == label(partner):
                    binding["partner"] = label(users[fp])
                    rebound = True
            elif any(cert == t for t in current):
                gone.append(cert)
        if rebound:
            changes.backup(layout)  # the manifest is part of what a backup holds
            manifest.save()
        return changes.untrust(layout, gone) if gone else None
