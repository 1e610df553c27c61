"""The ``partners`` table: partners registered with ``ihe-gateway partners add``.

The CA is stored as PEM text, not a path: every worker and every machine sharing
the database must trust the same certificates without a shared file system.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, utcnow


class PartnerRow(Base):
    __tablename__ = "partners"

    home_community_id: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(256))
    base_url: Mapped[str] = mapped_column(sa.String(1024))
    endpoints: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    ca_pem: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    timeout_seconds: Mapped[float] = mapped_column(sa.Float)
    max_documents_per_retrieve: Mapped[int] = mapped_column(sa.Integer)
    quirks: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
