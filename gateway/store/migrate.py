"""Alembic migrations, run from code: no alembic.ini at run time.

Each run holds a lock for its whole transaction, so several gateway processes
starting at once (even on several machines sharing one PostgreSQL) migrate the
database exactly once: the first takes the lock and upgrades, the others wait
and then find it at head. PostgreSQL uses a transaction-scoped advisory lock;
SQLite takes its write lock at BEGIN (``BEGIN IMMEDIATE``). Both databases run
a migration inside one transaction, so a failed migration leaves the schema as
it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.store.db import Database, normalize_url

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# Arbitrary but fixed: every gateway process must contend for the same key.
ADVISORY_LOCK_KEY = 0x1E6A_7E_0001


class MigrationError(RuntimeError):
    """The database cannot be brought to this gateway's schema."""


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration built in code; ``connection`` is the one env.py runs on."""
    cfg = Config()
    # ConfigParser interpolation: a '%' in the path would otherwise be read as a reference.
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this version of the gateway knows."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if rev is None:  # pragma: no cover - the package ships its migrations
        raise MigrationError(f"no migrations found in {MIGRATIONS}")
    return rev


@contextmanager
def locked_connection(url: str) -> Iterator[sa.Connection]:
    """A connection inside a transaction that holds the migration lock; commits on success."""
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        if db.dialect == "sqlite":
            engine = db.engine.execution_options(gateway_sqlite_begin="IMMEDIATE")
            with engine.connect() as conn:
                # Rebuilding a table (Alembic batch mode) with foreign keys enforced would
                # cascade or fail; the pragma is ignored inside a transaction, so set it first.
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
                with conn.begin():
                    yield conn
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if problems:
                        raise MigrationError(f"foreign key violations after migrating: {problems}")
        else:
            with db.engine.begin() as conn:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
                yield conn
    finally:
        db.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    with locked_connection(url) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` removes every table the migrations made)."""
    with locked_connection(url) as conn:
        command.downgrade(alembic_config(conn), revision)


def current(url: str) -> str | None:
    """The database's revision; None when it has never been migrated (or does not exist)."""
    u = normalize_url(url)
    file_db = u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:")
    if file_db and not Path(str(u.database)).exists():
        return None  # do not create an empty file just to look at it
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        db.dispose()


def ensure_current(url: str) -> str:
    """Bring an empty or older database to head and return head.

    A database at a revision this code does not know was migrated by a newer
    gateway; running against it would be guesswork, so that is an error.
    """
    target = head()
    rev = current(url)
    if rev == target:
        return target
    if rev is not None:
        script = ScriptDirectory.from_config(alembic_config())
        try:
            script.get_revision(rev)
        except Exception as exc:  # alembic raises several kinds for an unknown id
            raise MigrationError(
                f"database is at revision {rev!r}, which this gateway does not know "
                f"(its newest is {target!r}); was it migrated by a newer version?"
            ) from exc
    upgrade(url, "head")
    return target
