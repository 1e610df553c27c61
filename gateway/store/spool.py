"""SQLite: a read's audit record handed to the kernel at once, moved into the database
a fraction of a second later; the counterpart of PostgreSQL's ``pgpipeline``.

A request that writes no data must still have its record stored before its answer
leaves. On SQLite a relaxed INSERT of that record (``relaxed.py``) costs one
transaction: its locks and a WAL frame per page, a dozen system calls, about 0.14 ms
right after a query's handler (``bench/audit.py``). Appending it to a file costs one
``write``. Once ``write`` returns the record is in the kernel's page cache, as a
relaxed commit's WAL frames are: a crash of the gateway loses nothing, and a
background thread fsyncs it within ``RELAXED_FLUSH_S`` and then moves it into the
database (``audit_inbox``, a FULL commit), so a power cut loses at most that last
fraction of a second, as before.

Layout: a directory next to the database file; each process appends to a *segment*
of its own, ``<pid>-<n>.open``, holding an exclusive ``flock`` on it for as long as it
may write there (the kernel drops the lock when the process dies, however it dies).
Every ``delay`` the owner *seals* it (fsync, rename to ``.sealed``, fsync of the
directory) and starts another on its next append. Any process moves a segment it can
lock: sealed ones, and those whose owner died. A frame is its length, its CRC-32 and
the row; a torn tail (a power cut in the middle of a write) is counted and logged,
without its bytes. A segment is unlinked after the commit that moved its rows: a crash
in between moves them again, and the indexer stores each record once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.store.soon import Soon
from gateway.store.walsync import RELAXED_FLUSH_S  # a spooled row is on disk within it

log = logging.getLogger(__name__)

STALE_NEW_S = 60.0
_FRAME = struct.Struct("!II")  # length, CRC-32
_ALL: weakref.WeakSet[RowSpool] = weakref.WeakSet()


def frame(row: bytes) -> bytes:
    return _FRAME.pack(len(row), zlib.crc32(row)) + row


def unframe(data: bytes) -> tuple[list[bytes], int]:
    """The rows of a segment, and how many bytes at its end are not a whole frame."""
    rows, at, size = [], 0, _FRAME.size
    while at + size <= len(data):
        length, crc = _FRAME.unpack_from(data, at)
        row = data[at + size : at + size + length]
        if len(row) != length or zlib.crc32(row) != crc:
            break
        rows.append(row)
        at += size + length
    return rows, len(data) - at


class RowSpool:
    """``append(rows)`` now; ``move(rows)`` (one transaction) for them soon, from a
    daemon thread started on first use; ``settle`` moves everything at once."""

    def __init__(self, directory: str | Path, move: Callable[[list[bytes]], None],
                 delay: float = RELAXED_FLUSH_S) -> None:
        self.directory = Path(directory)
        self.move = move
        self.moved = threading.Event()  # set after each pass that moved rows (tests)
        self.torn = 0  # bytes dropped from torn tails, for /healthz
        self._lock = threading.Lock()  # the live segment
        self._fd: int | None = None
        self._path: Path | None = None
        self._serial = 0
        self._live_rows = 0  # in the live segment
        self._sealed: dict[Path, int] = {}  # our sealed segments: their rows
        self.worker = Soon(self._pass, delay, "audit-spool")  # seals and moves
        _ALL.add(self)

    def append(self, rows: Sequence[bytes]) -> None:
        """The rows in this process's segment when this returns (raises OSError if not)."""
        data = b"".join(frame(r) for r in rows)
        with self._lock:
            fd = self._fd if self._fd is not None else self._open()
            view = memoryview(data)
            while view:  # a regular file takes it whole unless the disk is full
                view = view[os.write(fd, view):]
            self._live_rows += len(rows)
        self.worker.ask()

    def backlog(self) -> dict[str, int]:
        """For ``/healthz``: this process's rows not in the database yet (``unconfirmed``,
        as PostgreSQL's pipeline reports them), every process's segments and bytes."""
        sizes = []
        for path in self._segments():
            with contextlib.suppress(FileNotFoundError):  # moved meanwhile
                sizes.append(path.stat().st_size)
        with self._lock:
            for path in [p for p in self._sealed if not p.exists()]:
                del self._sealed[path]  # moved by another process
            own = self._live_rows + sum(self._sealed.values())
        return {"unconfirmed": own, "segments": len(sizes), "bytes": sum(sizes),
                "torn_bytes": self.torn}

    def settle(self, timeout: float = 10.0) -> bool:
        """Seal this process's segment, wait up to ``timeout`` for the other processes'
        to be sealed, and move every segment; True when none is left (a search first).
        False, with a log line, if the database refused them: they stay spooled."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._pass():  # the database refused them: they stay, logged
                return False
            left = self._segments()
            if not left or time.monotonic() >= deadline:
                return not left
            time.sleep(min(0.02, self.worker.delay / 4))  # another process's thread seals them

    def close(self) -> None:
        """Stop the thread, seal and move what is left (``Database.dispose``)."""
        self.worker.close()

    # -- the owner's side -------------------------------------------------------------

    def _open(self) -> int:
        """A new segment, locked before it gets the name other processes look for."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._serial += 1
        name = f"{os.getpid()}-{self._serial}-{time.time_ns()}"
        fresh = self.directory / f"{name}.new"
        fd = os.open(fresh, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = fresh.with_suffix(".open")
            os.rename(fresh, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(fresh)
            raise
        self._fd, self._path = fd, path
        return fd

    def _seal(self) -> None:
        with self._lock:  # appends from now on open the next segment ...
            fd, path = self._fd, self._path
            if fd is None or path is None:
                return
            self._fd = self._path = None
            rows, self._live_rows = self._live_rows, 0
        # ... so no request waits for these two fsyncs (milliseconds each)
        try:
            os.fsync(fd)
            sealed = path.with_suffix(".sealed")
            os.rename(path, sealed)
            path = sealed
            _fsync_directory(self.directory)
        finally:
            with self._lock:
                self._sealed[path] = rows  # unlocked below: any process may move it
            os.close(fd)  # the lock goes with it

    def _pass(self) -> bool:
        try:
            self._seal()
            self._move_ready()
            return True
        except Exception as exc:  # noqa: BLE001 - the rows stay spooled; say why
            log.error("spooled audit rows not moved yet: %s", type(exc).__name__)
            return False

    # -- any process's side -----------------------------------------------------------

    def _segments(self) -> list[Path]:
        """Every process's segments not moved yet; a ``.new`` one left for a minute (its
        process died between creating and naming it: empty, renamed before its first
        append) is removed on the way."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            path = self.directory / name
            if name.endswith((".open", ".sealed")):
                found.append(path)
            elif name.endswith(".new"):
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > STALE_NEW_S:
                        path.unlink()
        return found

    def _move_ready(self) -> None:
        """Move every segment nobody writes to: sealed, or its owner gone."""
        moved = 0
        for path in self._segments():
            if path == self._path:
                continue  # ours, still being written
            moved += self._move_one(path)
        if moved:
            self.moved.set()

    def _move_one(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0  # another process moved it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its owner writes there, or another process is moving it
            if os.fstat(fd).st_nlink == 0:
                return 0  # moved and unlinked while we waited for the lock
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            rows, torn = unframe(data)
            if torn:
                self.torn += torn
                log.error("audit spool segment %s: %d bytes at its end are not a whole "
                          "record (cut off by a crash) and were dropped", path.name, torn)
            if rows:
                self.move(rows)
            os.unlink(path)
            with self._lock:
                self._sealed.pop(path, None)
            return len(rows)
        finally:
            os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _after_fork_in_child() -> None:
    # The parent's segment and thread are the parent's: the child opens its own.
    for spool in list(_ALL):
        if spool._fd is not None:
            with contextlib.suppress(OSError):
                os.close(spool._fd)
        spool._fd = spool._path = None
        spool._live_rows, spool._sealed = 0, {}
        spool._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
