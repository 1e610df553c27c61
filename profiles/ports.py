"""Ports: the small interfaces transaction logic is written against.

The gateway supplies real implementations (database, blob store, partners);
tests supply in-memory ones. Later issues add ports here as they need them.
"""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class BlobStore(Protocol):
    """Content-addressed document storage: bytes in, SHA-1 key out."""

    def put(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream; return (sha1 hex, size)."""
        ...

    def open(self, sha1: str) -> BinaryIO: ...

    def exists(self, sha1: str) -> bool: ...
