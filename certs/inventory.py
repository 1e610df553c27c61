"""Every certificate the gateway uses, with who uses it and how long it has left.

The inventory is read from the configuration (``[tls]`` files, each partner's
``ca`` and ``signing_certificates``) plus a small manifest, ``inventory.json``
beside the trust store, that remembers what a file cannot say: which partner a
trusted certificate belongs to, and which old certificates are in a rotation's
overlap window and until when.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certs.verify import is_ca

MANIFEST = "inventory.json"
WARN_DAYS, NOTICE_DAYS = 30, 90
# Worst first: the status a person must act on is the one to show.
STATUS_ORDER = ("expired", "not-yet-valid", "unreadable", "<30 days", "<90 days", "ok")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def expiry_status(cert: x509.Certificate, now: datetime | None = None) -> str:
    """``expired``, ``not-yet-valid``, ``<30 days``, ``<90 days`` or ``ok``."""
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        return "expired"
    if cert.not_valid_before_utc > now:
        return "not-yet-valid"
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    return "<30 days" if days < WARN_DAYS else "<90 days" if days < NOTICE_DAYS else "ok"


def needs_attention(status: str) -> bool:
    """What ``certs check`` fails on: anything other than ``ok`` and the 90-day notice."""
    return status not in ("ok", "<90 days")


@dataclass
class Manifest:
    """``inventory.json``: partner bindings and rotation overlaps, by SHA-256 fingerprint."""

    path: Path
    bindings: dict[str, dict[str, str]] = field(default_factory=dict)
    retiring: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        return cls(path, dict(data.get("bindings", {})), dict(data.get("retiring", {})))

    def save(self) -> None:
        body = {"bindings": self.bindings, "retiring": self.retiring}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class Entry:
    """One certificate in use (or a file that could not be read: ``cert`` None)."""

    role: str
    file: Path
    cert: x509.Certificate | None
    user: str = ""  # the partner (name and homeCommunityId) or "this gateway"

    def status(self, now: datetime | None = None) -> str:
        return "unreadable" if self.cert is None else expiry_status(self.cert, now)

    def days_left(self, now: datetime | None = None) -> int | None:
        if self.cert is None:
            return None
        now = now or datetime.now(UTC)
        return int((self.cert.not_valid_after_utc - now).total_seconds() // 86400)

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "file": str(self.file), "used_by": self.user,
                               "status": self.status(now)}
        if self.cert is not None:
            out |= {
                "subject": self.cert.subject.rfc4514_string(),
                "issuer": self.cert.issuer.rfc4514_string(),
                "serial": format(self.cert.serial_number, "X"),
                "sha256": fingerprint(self.cert),
                "not_after": self.cert.not_valid_after_utc.isoformat(),
                "days_left": self.days_left(now),
            }
        return out


def read_certificates(path: Path) -> list[x509.Certificate]:
    """PEM (one or many) or DER; raises OSError or ValueError."""
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return list(x509.load_pem_x509_certificates(data))
    return [x509.load_der_x509_certificate(data)]


def _entries(role: str, path: Path | None, user: str, manifest: Manifest) -> list[Entry]:
    if path is None:
        return []
    try:
        certs = read_certificates(path)
    except (OSError, ValueError):
        return [Entry(role, Path(path), None, user)]
    found = []
    for cert in certs:
        fp = fingerprint(cert)
        who = user or manifest.bindings.get(fp, {}).get("partner", "")
        kind = role
        if role == "trust store":
            kind = "trusted CA" if is_ca(cert) else "pinned certificate"
            who = who or ("clients it issued" if is_ca(cert) else "unbound")
        if fp in manifest.retiring:
            kind += f" (retiring {manifest.retiring[fp]['until'][:10]})"
        found.append(Entry(kind, Path(path), cert, who))
    return found


def collect(config: Any) -> list[Entry]:
    """Every certificate ``config`` puts to use, own first, then trust, then partners."""
    tls = config.tls
    if tls is None:
        return []
    manifest = Manifest.load(Path(tls.trust_store).parent)
    found = _entries("gateway (TLS + SAML)", tls.certificate, "this gateway", manifest)
    found += _entries("trust store", tls.trust_store, "", manifest)
    for partner in getattr(config, "partners", ()):
        who = f"{partner.name or '?'} ({partner.home_community_id})"
        found += _entries("partner CA", getattr(partner, "ca_path", None), who, manifest)
        found += _entries("partner signer", partner.signing_certificates, who, manifest)
    return found


def own_status(config: Any, now: datetime | None = None) -> str:
    own = [e for e in collect(config) if e.user == "this gateway"]
    return own[0].status(now) if own else "unreadable"


def _short(name: x509.Name) -> str:
    for oid in (x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME):
        attrs = name.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return name.rfc4514_string() or "-"


def _development(cert: x509.Certificate) -> bool:
    """Issued by ``certs.authority``'s development CA (marked NOT FOR PRODUCTION)."""
    from certs.authority import DEV_ORGANIZATION

    return DEV_ORGANIZATION in cert.issuer.rfc4514_string()


def render_table(entries: list[Entry], now: datetime | None = None) -> str:
    """A table a security officer reads at a glance: worst status first."""
    now = now or datetime.now(UTC)
    ranked = sorted(entries, key=lambda e: STATUS_ORDER.index(e.status(now)))
    rows = [("STATUS", "DAYS", "NOT AFTER", "ROLE", "USED BY", "SUBJECT", "ISSUER", "SERIAL",
             "SHA-256", "FILE")]
    for e in ranked:
        c = e.cert
        rows.append((
            e.status(now).upper() if e.status(now) != "ok" else "ok",
            "-" if c is None else str(e.days_left(now)),
            "-" if c is None else f"{c.not_valid_after_utc:%Y-%m-%d}",
            e.role + (" [DEV]" if c is not None and _development(c) else ""),
            e.user or "-",
            "-" if c is None else _short(c.subject),
            "-" if c is None else _short(c.issuer),
            "-" if c is None else format(c.serial_number, "X")[:12],
            "-" if c is None else fingerprint(c)[:23] + "...",
            e.file.name,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts = {s: sum(1 for e in entries if e.status(now) == s) for s in STATUS_ORDER}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    notes = [f"{len(entries)} certificate(s): {summary or 'none'}"]
    if any(e.cert is not None and _development(e.cert) for e in entries):
        notes.append("[DEV] = development CA, NOT FOR PRODUCTION: replace before going live")
    return "\n".join([*lines, "", *notes])
