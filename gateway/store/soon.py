"""Work done on a background thread a short delay after it is asked for, once for every
request in that delay: the WAL's fsync (``walsync.py``), the spool's move
(``spool.py``) and the PostgreSQL pipeline's confirmation (``pgpipeline.py``) all run
this way, off the request path."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence

_ALL: weakref.WeakSet[Soon] = weakref.WeakSet()


class Soon:
    """``work()`` on a daemon thread ``delay`` seconds after ``ask()`` (started on first
    use); ``work`` returning False is retried after the next delay, and after each of
    ``pauses`` first (the last repeated) while it keeps failing."""

    def __init__(self, work: Callable[[], bool], delay: float, name: str,
                 pauses: Sequence[float] = ()) -> None:
        self.work, self.delay, self.name, self.pauses = work, delay, name, tuple(pauses)
        self._due = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        _ALL.add(self)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def ask(self) -> None:
        if not self._due.is_set():  # set() takes a lock and notifies: once per delay
            self._due.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(target=self._run, name=self.name,
                                                    daemon=True)
                    self._thread.start()

    def close(self) -> None:
        """Stop the thread (after the work in progress) and do the work once more here;
        a later ``ask()`` starts a new thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._closed.set()
                self._due.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._closed.clear()
        self.work()

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            self._due.wait()
            self._closed.wait(self.delay)  # what is asked in the next moments joins
            self._due.clear()  # asked after this: done next time; before: done now
            if self.work():
                failures = 0
                continue
            if self.pauses:  # back off while it fails (close() cuts the pause short)
                self._closed.wait(self.pauses[min(failures, len(self.pauses) - 1)])
            failures += 1
            self._due.set()


def _after_fork_in_child() -> None:
    # The parent's thread does not exist in a forked child: start one when asked.
    for soon in list(_ALL):
        soon._thread, soon._lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
