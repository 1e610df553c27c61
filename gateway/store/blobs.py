"""Content-addressed document storage on disk: ``root/ab/cd/<sha1>``.

A blob's name is the SHA-1 of its bytes (XDS identifies documents by SHA-1),
so identical content is stored once and a stored file is never modified:
writers build a complete file under ``root/.tmp/`` and rename it into place,
which is atomic, so readers and concurrent writers of the same content never
see a partial file. Several processes (or machines, with ``root`` on a shared
file system) may use one root at once.

Documents are written before their metadata commits (DESIGN, Storage): a crash
in between leaves an orphan blob, which ``sweep`` removes once it is older
than any request could take. Storing content that already exists refreshes
the file's mtime, and ``sweep`` re-checks the mtime after moving a file aside,
so a blob that a request has just stored again is never swept under it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHARD = re.compile(r"[0-9a-f]{2}")


class BlobNotFound(KeyError):
    """No blob with that key (a KeyError, so code without gateway imports can catch it)."""


def blob_key(sha1: str) -> str:
    """The canonical (lower-case hex) key for ``sha1``; ValueError for anything else.

    Keys become file names, so this is also what stops ``../`` and friends.
    """
    if not isinstance(sha1, str):
        raise ValueError("blob key must be a string")
    key = sha1.lower()
    if not _SHA1.fullmatch(key):
        raise ValueError("blob key must be 40 hexadecimal digits (a SHA-1)")
    return key


@dataclass(frozen=True)
class SweepReport:
    blobs_removed: int = 0
    bytes_removed: int = 0
    temp_files_removed: int = 0


class FileBlobStore:
    """profiles.ports.BlobStore on a local or shared file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha1: str) -> Path:
        key = blob_key(sha1)
        return self.root / key[:2] / key[2:4] / key

    def put(self, stream: BinaryIO) -> tuple[str, int]:
        """Store ``stream``'s bytes, hashing them as they are written; return (sha1, size)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        tmp = Path(name)
        digest, size = hashlib.sha1(usedforsecurity=False), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha1 = digest.hexdigest()
            self._install(tmp, sha1)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return sha1, size

    def adopt(self, path: Path, sha1: str, size: int) -> tuple[str, int]:
        """Move a file already spooled and hashed (an MTOM attachment) in, without a copy.

        The caller computed ``sha1`` while receiving the bytes; the size is checked
        here. ``path`` is consumed: afterwards it no longer exists. When it lies on
        another file system it is copied (and then the hash is checked).
        """
        key = blob_key(sha1)
        src = Path(path)
        actual = src.stat().st_size
        if actual != size:
            raise ValueError(f"spooled file has {actual} bytes, not {size}")
        with open(src, "rb") as f:
            os.fsync(f.fileno())  # its bytes must be durable before metadata points at them
        try:
            self._install(src, key)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # the spool folder is on another file system
                raise
            self._install(self._copy_in(src, key), key)
            src.unlink()
        return key, size

    def open(self, sha1: str) -> BinaryIO:
        try:
            return open(self.path(sha1), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise BlobNotFound(sha1) from None

    def exists(self, sha1: str) -> bool:
        return self.path(sha1).is_file()

    def size(self, sha1: str) -> int:
        try:
            return self.path(sha1).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(sha1) from None

    def delete(self, sha1: str) -> bool:
        """Remove a blob; False when there was none."""
        try:
            self.path(sha1).unlink()
        except FileNotFoundError:
            return False
        return True

    def sweep(self, referenced: Callable[[str], bool], older_than: timedelta) -> SweepReport:
        """Remove blobs nobody references, and abandoned temporary files.

        Only files untouched for ``older_than`` are considered, which must exceed
        the longest request (a document is stored, then its metadata commits).
        ``referenced(sha1)`` answers from the committed metadata.
        """
        cutoff = time.time() - older_than.total_seconds()
        temps = 0
        for entry in os.scandir(self.tmp):
            if entry.is_file() and _mtime(entry.path) < cutoff and _unlink(entry.path):
                temps += 1
        removed = freed = 0
        for key, file in self._walk():
            if _mtime(file) >= cutoff or referenced(key):
                continue
            size = self._retire(key, file, cutoff)
            if size is not None:
                removed, freed = removed + 1, freed + size
        return SweepReport(removed, freed, temps)

    def _install(self, file: Path, key: str) -> None:
        """Rename ``file`` to its content address, or drop it when that content is stored."""
        final = self.path(key)
        if _touch(final):
            file.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        # A concurrent writer of the same content may win the race; replacing its file
        # with identical bytes is harmless, and readers keep the inode they opened.
        os.replace(file, final)
        _fsync_dir(final.parent)

    def _copy_in(self, src: Path, key: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="adopt-")
        tmp = Path(name)
        digest = hashlib.sha1(usedforsecurity=False)
        try:
            with open(src, "rb") as f, os.fdopen(fd, "wb") as out:
                while chunk := f.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != key:
                raise ValueError("spooled file does not match its SHA-1")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _retire(self, key: str, file: str, cutoff: float) -> int | None:
        """Move an unreferenced blob aside, then delete it unless a put touched it meanwhile."""
        aside = self.tmp / f"sweep-{key}-{uuid.uuid4().hex}"
        try:
            os.replace(file, aside)
        except FileNotFoundError:
            return None
        st = aside.stat()
        if st.st_mtime >= cutoff:  # stored again between our look and the move: put it back
            os.replace(aside, file)
            return None
        aside.unlink()
        return st.st_size

    def _walk(self) -> Iterator[tuple[str, str]]:
        for top in _subdirs(self.root):
            for sub in _subdirs(top.path):
                for entry in os.scandir(sub.path):
                    if entry.is_file() and _SHA1.fullmatch(entry.name):
                        yield entry.name, entry.path


def _subdirs(path: Path | str) -> Iterator[os.DirEntry[str]]:
    for entry in os.scandir(path):
        if entry.is_dir() and _SHARD.fullmatch(entry.name):
            yield entry


def _touch(path: Path) -> bool:
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")  # gone already: nothing to do


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
