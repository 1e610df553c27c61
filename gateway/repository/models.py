"""The ``repository_documents`` table (migration ``0006_repository``).

One row per document this repository holds: the document uniqueId (what
ITI-43 asks for) mapped to its blob (``blobs.sha1``, the content address in
``FileBlobStore``), with the size and mimeType that go back in a retrieve and
the repositoryUniqueId it was stored under. The row commits in the same
database transaction as the blob's row and, when the registry is local, the
registry metadata, so a document is retrievable exactly when it is registered.
Several uniqueIds may share one blob (identical content submitted twice).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, utcnow


class RepositoryDocument(Base):
    __tablename__ = "repository_documents"

    unique_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    sha1: Mapped[str] = mapped_column(sa.String(40), sa.ForeignKey("blobs.sha1"), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    mime_type: Mapped[str] = mapped_column(sa.String(255))
    repository_unique_id: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())

    __table_args__ = (sa.CheckConstraint("size >= 0", name="size_not_negative"),)
