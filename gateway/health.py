"""``/healthz``: is the database reachable, how long until our certificates expire, and
how many audit records still wait for their repositories (ATNA backlog)."""

from __future__ import annotations

from typing import Any

from certs.store import certificate_status


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
        from certs.inventory import collect, needs_attention

        warnings = [e.as_dict() for e in collect(rt.config) if needs_attention(e.status())]
        if warnings:  # trust store and partners too; our own expiry alone fails the check
            report["certificate_warnings"] = warnings
    audit = getattr(rt, "audit", None)
    if db_ok and audit is not None:
        # A backlog is not a failure (nothing is lost; delivery resumes): it is reported.
        report["audit"] = audit.queue.backlog()
    report["status"] = "ok" if healthy else "fail"
    return report
