"""Group commit for the records that have no data transaction to ride on.

A partner's query needs a commit of its own for its XUA replay tokens and its record,
and that commit waits for the disk. Requests that finish while another request's
commit is under way wait for it and then write together: one transaction and one
flush for all of them. (Records alone, a local read's or a refusal's, need no flush
and skip the group: ``gateway/store/relaxed.py``.) The first request to arrive when no commit is
running writes at once, on its own thread (no hand-off, so a lone request pays
nothing extra). Every caller returns only once its own rows are committed, or
raises what the database raised: nothing is acknowledged that is not committed.

A ticket may carry a ``Guard``: it writes first, in the shared transaction, and decides
whether the ticket's rows follow. A request that writes no data brings its XUA replay
tokens this way (``gateway.security.replay.PendingTokens``), so the token and the audit
record share one commit instead of paying one each; a token found taken (a replay,
perhaps of a request in this very batch) keeps its ticket's rows out and ``write``
returns False. Guards run in ``order``, so two batches insert the same tokens in the
same order and never wait on each other in a cycle (PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Guard(Protocol):
    """Writes first in the shared transaction; False keeps the ticket's rows out.

    A guard may also offer ``commit_with(table, rows) -> bool``: write itself and the
    rows in a transaction of their own, for a batch of one ticket.
    """

    @property
    def order(self) -> str: ...

    def __call__(self, connection: Any) -> bool: ...


@dataclass
class Ticket:
    """One caller's rows (and guard) in a batch; the commit sets ``accepted``."""

    rows: Sequence[bytes]
    guard: Guard | None = None
    accepted: bool = True
    done: bool = False
    error: BaseException | None = None

    @property
    def order(self) -> str:
        return self.guard.order if self.guard is not None else ""


class GroupCommit:
    """``write(rows)`` through ``commit(tickets)``, batching concurrent callers.

    ``commit`` writes every ticket of the batch in one transaction: for each, in
    ``order``, its guard first (``accepted`` = what the guard says), then its rows
    if accepted.
    """

    def __init__(self, commit: Callable[[list[Ticket]], None]) -> None:
        self._commit = commit
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []
        self._busy = False
        self.commits = 0  # transactions run (for tests and the bench)

    def write(self, rows: Sequence[bytes], guard: Guard | None = None) -> bool:
        """True once ``rows`` are committed; False if ``guard`` kept them out (what the
        guard wrote is committed); raises what the commit raised."""
        ticket = Ticket(rows, guard)
        with self._cond:
            self._waiting.append(ticket)
            while self._busy and not ticket.done:
                self._cond.wait()
            if ticket.done:  # another caller's commit carried it
                if ticket.error is not None:
                    raise ticket.error
                return ticket.accepted
            self._busy = True  # this caller leads: it commits everyone waiting
            batch, self._waiting = self._waiting, []
        error: BaseException | None = None
        try:
            self._commit(sorted(batch, key=lambda t: t.order))
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
        return ticket.accepted
