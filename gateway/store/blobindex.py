"""The ``blobs`` table: which stored blobs belong to committed metadata.

The order that keeps the store consistent (DESIGN, Storage):

1. ``FileBlobStore.put`` / ``adopt`` writes the document's bytes;
2. in the metadata's own transaction, ``record_blob`` inserts its row, and the
   metadata (a later table with a foreign key to ``blobs.sha1``) commits with it;
3. ``sweep_orphans`` removes files without a row, once they are old enough.

A crash between 1 and 2 leaves only an orphan file, never metadata without its
document.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store.blobs import FileBlobStore, SweepReport, blob_key
from gateway.store.db import Database
from gateway.store.models import Blob, utcnow


class BlobSizeConflict(ValueError):
    """A blob with this SHA-1 is already recorded with another size."""


def record_blob(session: Session, sha1: str, size: int) -> None:
    """Record a stored blob in the caller's transaction; recording it again is a no-op.

    Safe when two transactions record the same content at once: the insert
    yields to the other's row instead of failing on the primary key.
    """
    key = blob_key(sha1)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(Blob)
        .values(sha1=key, size=size, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[Blob.sha1])
    )
    stored = session.execute(sa.select(Blob.size).where(Blob.sha1 == key)).scalar_one()
    if stored != size:
        raise BlobSizeConflict(f"blob {key} is recorded with {stored} bytes, not {size}")


def is_recorded(session: Session, sha1: str) -> bool:
    key = blob_key(sha1)
    return session.execute(sa.select(Blob.sha1).where(Blob.sha1 == key)).first() is not None


def sweep_orphans(db: Database, store: FileBlobStore, older_than: timedelta) -> SweepReport:
    """Remove blob files that no committed metadata records, and stale temporary files.

    Each question is its own short transaction, so rows committed while the
    sweep runs are seen (a long SQLite read transaction would not see them).
    """

    def referenced(sha1: str) -> bool:
        with db.session() as session:
            return is_recorded(session, sha1)

    return store.sweep(referenced, older_than)
