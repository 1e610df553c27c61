"""Group commit for the records that have no data transaction to ride on.

A query's (or a refusal's) record needs a commit of its own, and a commit that
must survive a power cut costs a flush to disk (SQLite WAL with synchronous=FULL,
PostgreSQL's WAL flush), more than everything else auditing does. Requests that
finish while another request's commit is under way wait for it and then write
together: one transaction, one flush for all of them. The first request to
arrive when no commit is running writes at once, on its own thread (no hand-off,
so a lone request pays nothing extra). Every caller returns only once its own
rows are committed, or raises what the database raised: nothing is acknowledged
that is not durable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class _Ticket:
    rows: Sequence[bytes]
    done: bool = False
    error: BaseException | None = None


class GroupCommit:
    """``write(rows)`` through ``commit(all_rows)``, batching concurrent callers."""

    def __init__(self, commit: Callable[[list[bytes]], None]) -> None:
        self._commit = commit
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._busy = False
        self.commits = 0  # transactions run (for tests and the bench)

    def write(self, rows: Sequence[bytes]) -> None:
        ticket = _Ticket(rows)
        with self._cond:
            self._waiting.append(ticket)
            while self._busy and not ticket.done:
                self._cond.wait()
            if ticket.done:  # another caller's commit carried it
                if ticket.error is not None:
                    raise ticket.error
                return
            self._busy = True  # this caller leads: it commits everyone waiting
            batch, self._waiting = self._waiting, []
        error: BaseException | None = None
        try:
            self._commit([row for t in batch for row in t.rows])
        except BaseException as exc:  # handed to every caller of the batch
            error = exc
        with self._cond:
            self.commits += 1
            for t in batch:
                t.done, t.error = True, error
            self._busy = False
            self._cond.notify_all()
        if error is not None:
            raise error
