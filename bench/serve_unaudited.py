"""BENCH ONLY: ``ihe-gateway`` with per-request auditing switched off, for
``bench/audit_served.py``'s comparison. Never run a gateway this way.

    .venv/bin/python bench/serve_unaudited.py serve --config DIR/gateway.toml

The gateway has no setting that stops auditing (ATNA: every transaction is
audited), so the switch lives here, outside the package: before the command
runs, ``Auditor.request`` is replaced by one returning a sink that notes and
records nothing; gunicorn forks its workers from this process, so they inherit
it. Everything else (TLS, XUA and its replay cache, refusals' alerts, node
events, the handlers and their data commits) is what ``ihe-gateway serve`` runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.audit import hook  # noqa: E402
from gateway.cli import main  # noqa: E402


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


def _unaudited(self, facts) -> Unaudited:
    return Unaudited()


if __name__ == "__main__":
    sys.stderr.write("BENCH ONLY: per-request auditing is OFF in this gateway\n")
    hook.Auditor.request = _unaudited  # type: ignore[method-assign]
    sys.exit(main())
