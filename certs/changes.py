"""Changes to the gateway's certificates and trust store, each backed up first.

Every function here takes a ``Layout`` (where the files are), copies what it
is about to change into ``backup/<timestamp>/`` beside the trust store, writes
the new files atomically (a reader sees the old file or the new one, never
half of one), and returns a one-line description of what it did, which the
caller audits. Nothing here reloads a server: see ``certs.reload``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.inventory import Manifest, fingerprint, read_certificates
from certs.verify import describe, is_ca, verify_chain


class ChangeRefused(ValueError):
    """The change would leave the gateway worse off; nothing was written."""


@dataclass(frozen=True)
class Layout:
    """The files a change touches: ours (certificate, key) and the trust store."""

    certificate: Path
    private_key: Path
    trust_store: Path

    @property
    def directory(self) -> Path:
        return self.trust_store.parent

    @classmethod
    def of(cls, config) -> Layout:
        if config.tls is None:
            raise ChangeRefused("the configuration has no [tls] section")
        t = config.tls
        return cls(Path(t.certificate), Path(t.private_key), Path(t.trust_store))


def backup(layout: Layout, *extra: Path) -> Path:
    """Copy the trust store, our certificate and key, the manifest and ``extra`` files."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = layout.directory / "backup" / stamp
    target.mkdir(parents=True, mode=0o700)
    os.chmod(target.parent, 0o700)
    manifest = layout.directory / "inventory.json"
    for path in (layout.trust_store, layout.certificate, layout.private_key, manifest, *extra):
        if path.exists():
            shutil.copy2(path, target / path.name)  # copy2 keeps a key's 0600
    return target


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
    os.replace(tmp, path)


def pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _check_usable(cert: x509.Certificate) -> None:
    now = datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        raise ChangeRefused(f"{describe(cert)} has expired; it would never be accepted")


def trust(
    layout: Layout, certs: list[x509.Certificate], *, partner: str = "", origin: str = ""
) -> str:
    """Add CAs or pinned partner certificates to the trust store, bound to ``partner``.

    ``origin`` (e.g. ``"partners add"``) is remembered on the bindings of the
    certificates this call brought in (and kept while the same origin re-binds them):
    whoever added a certificate for a partner may take it out again, but never one
    the operator trusted otherwise.
    """
    if not certs:
        raise ChangeRefused("no certificate to trust")
    for cert in certs:
        _check_usable(cert)
        if not is_ca(cert) and not partner:
            raise ChangeRefused(
                f"{describe(cert)} is not a CA: say which partner it pins (--partner)"
            )
    current = read_certificates(layout.trust_store)
    new = [c for c in certs if all(c != t for t in current)]
    manifest = Manifest.load(layout.directory)
    backup(layout)
    if new:
        write_atomic(layout.trust_store, pem(current + new))
    if partner:
        for cert in certs:
            fp = fingerprint(cert)
            binding = {"partner": partner, "added": datetime.now(UTC).isoformat()}
            brought = any(cert == n for n in new)
            if origin and (brought or manifest.bindings.get(fp, {}).get("origin") == origin):
                binding["origin"] = origin
            manifest.bindings[fp] = binding
        manifest.save()
    names = "; ".join(f"{c.subject.rfc4514_string()} [{fingerprint(c)}]" for c in certs)
    return f"trusted {names}" + (f" for partner {partner}" if partner else "")


def untrust(layout: Layout, selector: str | list[x509.Certificate]) -> str:
    """Remove certificates (given, or by a fingerprint prefix) from the trust store."""
    current = read_certificates(layout.trust_store)
    if isinstance(selector, str):
        wanted = selector.replace(":", "").upper()
        gone = [c for c in current if fingerprint(c).replace(":", "").startswith(wanted)]
        if len(gone) > 1:
            raise ChangeRefused(f"{selector!r} matches {len(gone)} certificates; give more of it")
    else:
        gone = [c for c in current if any(c == s for s in selector)]
    if not gone:
        raise ChangeRefused("no such certificate in the trust store")
    kept = [c for c in current if all(c != g for g in gone)]
    if not kept:
        raise ChangeRefused("that would empty the trust store: no client could connect")
    manifest = Manifest.load(layout.directory)
    backup(layout)
    write_atomic(layout.trust_store, pem(kept))
    for cert in gone:
        manifest.bindings.pop(fingerprint(cert), None)
        manifest.retiring.pop(fingerprint(cert), None)
    manifest.save()
    return "untrusted " + "; ".join(
        f"{c.subject.rfc4514_string()} [{fingerprint(c)}]" for c in gone)


def install(
    target_cert: Path,
    key_public_der: bytes,
    chain: list[x509.Certificate],
    anchors: list[x509.Certificate],
    layout: Layout,
) -> str:
    """Install ``chain`` (leaf first) for the key whose public half is ``key_public_der``.

    Refuses a leaf that is not the key's, or a chain that does not verify for
    both TLS purposes (the gateway's certificate serves and calls out).
    """
    if not chain:
        raise ChangeRefused("no certificate to install")
    leaf = chain[0]
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != key_public_der:
        raise ChangeRefused(f"{describe(leaf)} does not match the private key")
    for purpose in ("server", "client"):
        verify_chain(leaf, chain[1:], anchors, purpose=purpose)
    backup(layout, target_cert)
    write_atomic(target_cert, pem([c for c in chain if not (is_ca(c) and c.issuer == c.subject)]))
    return f"installed {leaf.subject.rfc4514_string()} [{fingerprint(leaf)}] in {target_cert}"


def start_overlap(layout: Layout, old: x509.Certificate, new: x509.Certificate,
                  days: float, role: str) -> str:
    """Rotation, trust side: while ``days`` run, the old and the new certificate are accepted.

    A pinned old certificate gets its successor pinned next to it; a certificate
    trusted through its CA needs nothing (the CA accepts both).
    """
    current = read_certificates(layout.trust_store)
    manifest = Manifest.load(layout.directory)
    until = datetime.now(UTC) + timedelta(days=days)
    manifest.retiring[fingerprint(old)] = {"until": until.isoformat(), "role": role,
                                           "successor": fingerprint(new)}
    if any(old == c for c in current) and all(new != c for c in current):
        write_atomic(layout.trust_store, pem([*current, new]))
        binding = manifest.bindings.get(fingerprint(old))
        if binding:
            manifest.bindings[fingerprint(new)] = dict(binding)
    manifest.save()
    return f"rotated {role}: {fingerprint(old)} -> {fingerprint(new)}, overlap until {until:%F %R}Z"


def retire(layout: Layout, *, now: datetime | None = None, immediately: bool = False) -> str:
    """End overlaps that are over (all of them with ``immediately``): old pins leave."""
    now = now or datetime.now(UTC)
    manifest = Manifest.load(layout.directory)
    due = [fp for fp, r in manifest.retiring.items()
           if immediately or datetime.fromisoformat(r["until"]) <= now]
    if not due:
        return ""
    current = read_certificates(layout.trust_store)
    kept = [c for c in current if fingerprint(c) not in due]
    backup(layout)
    if len(kept) != len(current):
        if not kept:
            raise ChangeRefused("retiring would empty the trust store")
        write_atomic(layout.trust_store, pem(kept))
    for fp in due:
        manifest.retiring.pop(fp)
        manifest.bindings.pop(fp, None)
    manifest.save()
    return "retired " + ", ".join(due)
