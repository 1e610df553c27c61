"""``/healthz``: is the database reachable, and how long until our certificates expire."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

WARNING_DAYS = 30


def certificate_status(path: Path, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return {"file": str(path), "status": "unreadable"}
    days_left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    if days_left <= 0:
        status = "expired"
    elif cert.not_valid_before_utc > now:
        status = "not_yet_valid"
    elif days_left < WARNING_DAYS:
        status = "expiring"
    else:
        status = "ok"
    return {
        "file": path.name,
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": int(days_left),
        "status": status,
    }


def health_report(rt) -> dict[str, Any]:
    """Failure when the database is unreachable or our own certificate has lapsed."""
    db_ok = rt.database.ping()
    report: dict[str, Any] = {
        "database": "ok" if db_ok else "unreachable",
        "home_community_id": rt.config.community.home_community_id,
    }
    healthy = db_ok
    if rt.config.tls is not None:
        own = certificate_status(rt.config.tls.certificate)
        report["certificates"] = [own]
        if own["status"] in ("expired", "not_yet_valid", "unreadable"):
            healthy = False
    report["status"] = "ok" if healthy else "fail"
    return report
