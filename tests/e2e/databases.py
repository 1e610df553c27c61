"""A PostgreSQL database of a module's own, next to GATEWAY_TEST_DATABASE_URL's.

End-to-end modules that serve communities of their own (not the package's shared
``gateway``) use it so their partner rows, documents and audit records never meet
another module's. Without GATEWAY_TEST_DATABASE_URL: None (the community's SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from tests.conftest import postgres_url


def own_database(suffix: str) -> Iterator[str | None]:
    """Yield the URL of a fresh ``<database>_<suffix>``; dropped afterwards."""
    base = postgres_url()
    if not base:
        yield None
        return
    url = sa.engine.make_url(base)
    name = f"{url.database}_{suffix}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
