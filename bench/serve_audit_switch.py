"""BENCH ONLY: ``ihe-gateway`` whose per-request auditing a request can switch off, for
the audit benches' with-and-without comparison. Never run a gateway this way.

    .venv/bin/python bench/serve_audit_switch.py serve --config DIR/gateway.toml

The gateway has no setting that stops auditing (ATNA: every transaction is
audited), so the switch lives here, outside the package: before the command runs,
``Auditor.request`` is wrapped so that a request carrying ``X-Bench-Audit: off``
gets a sink that notes and records nothing (``Unaudited``); every other request is
audited as ``ihe-gateway serve`` audits it. gunicorn forks its workers from this
process, so they inherit the wrapper. One server, one database and the same worker
processes serve both modes, so the comparison carries no difference between two
servers (an A/A run of two servers differed by up to 4 %: ``bench/README.md``).
Everything else (TLS, XUA and its replay cache, refusals' alerts, node events, the
handlers and their data commits) is what ``ihe-gateway serve`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.audit import hook  # noqa: E402

SWITCH = "X-Bench-Audit"  # header; "off" switches the request's auditing off


class Unaudited:
    """An AuditSink that keeps nothing (bench only)."""

    def note(self, **facts) -> None:
        return None

    def known(self, **facts) -> None:
        return None

    @contextmanager
    def serving(self) -> Iterator[None]:
        yield

    def record(self, message) -> None:
        return None

    @contextmanager
    def bind(self, session) -> Iterator[None]:
        yield

    def finish(self, **outcome) -> None:
        return None

    def answered(self, answer) -> None:
        return None


def install() -> None:
    """Wrap ``Auditor.request``: the request's ``X-Bench-Audit: off`` gets ``Unaudited``."""
    from flask import has_request_context, request

    audited = hook.Auditor.request

    def switchable(self, facts):
        if has_request_context() and request.headers.get(SWITCH) == "off":
            return Unaudited()
        return audited(self, facts)

    hook.Auditor.request = switchable  # type: ignore[method-assign]


if __name__ == "__main__":
    from gateway.cli import main

    sys.stderr.write(f"BENCH ONLY: a request with {SWITCH}: off is not audited\n")
    install()
    sys.exit(main())
