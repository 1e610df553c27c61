"""The disk flush a relaxed SQLite commit skipped, done within a bounded delay.

A request that writes no data still commits its audit record before its answer
leaves (``gateway/audit/queue.py``). Flushing that commit to disk (WAL with
``synchronous=FULL``: an ``fsync`` per commit) cost more than the rest of auditing
put together, and a read has no data whose acknowledgement depends on it. So those
commits run with ``synchronous=NORMAL``: the record is in the database file's WAL
(in the OS's cache) before the answer leaves, so a crash of the gateway loses
nothing, and ``WalFlusher`` fsyncs the WAL within ``RELAXED_FLUSH_S``, so a power cut
loses at most the records of that last fraction of a second. Any later FULL commit
(a registration, an XUA replay token) flushes them too. PostgreSQL's own
``synchronous_commit = off`` gives the same bound (three times ``wal_writer_delay``,
0.6 s by default); SQLite has no writer thread, hence this one.
"""

from __future__ import annotations

import logging
import os
import threading

from gateway.store.soon import Soon

log = logging.getLogger(__name__)

RELAXED_FLUSH_S = 0.2  # a relaxed commit is on disk at most this long after it returns


class WalFlusher:
    """fsyncs one SQLite database's ``-wal`` file ``delay`` seconds after ``soon()``
    (commits in between share the flush), on a daemon thread started on first use."""

    def __init__(self, database_path: str, delay: float = RELAXED_FLUSH_S) -> None:
        self.path = database_path + "-wal"
        self.flushed = threading.Event()  # set after each fsync (tests await it)
        self.worker = Soon(self._flush_logged, delay, "sqlite-wal-flusher")  # the bound: .delay

    def soon(self) -> None:
        """A relaxed commit just returned: flush it within ``delay``."""
        self.worker.ask()

    def flush(self) -> None:
        """fsync the WAL now (it may not exist: nothing was written since a checkpoint)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
            self.flushed.set()
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stop the thread and flush what is pending (``Database.dispose``); a later
        ``soon()`` starts a new thread."""
        self.worker.close()

    def _flush_logged(self) -> bool:
        try:
            self.flush()
        except OSError as exc:  # the next FULL commit flushes anyway; say why it failed
            log.error("could not flush the SQLite WAL %s: %s", self.path, exc)
        return True
