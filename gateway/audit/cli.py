"""Command line: ``ihe-gateway audit-repository`` and ``ihe-gateway audit search|export``.

Registered in ``gateway/cli.py``. Searching or exporting the trail is itself
audited (Audit Log Used, DICOM 110101) in the store that was read, so the trail
shows who looked at the trail.
"""

from __future__ import annotations

import getpass
import json
import logging
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.audit.hook import Auditor, audit_source
from gateway.audit.queue import AuditQueue
from gateway.audit.search import AuditQuery, parse_time, search, table_lines
from gateway.clicommon import config_option, load_config_or_exit
from gateway.config import Config
from gateway.store.db import Database
from profiles.atna.events import Endpoint, Occasion
from profiles.atna.nodes import audit_log_used

log = logging.getLogger("gateway.audit")

_database_option = click.option(
    "--database-url",
    default=None,
    help="Read this database instead of the configuration's (e.g. a repository's own store).",
)



class _Time(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time (2024-05-06T07:08:09Z)")


def _filters(fn):
    for option in reversed(
        (
            click.option("--patient", help="Patient id (CX, or just its ID part)."),
            click.option(
                "--since", type=_Time(), help="From this time (inclusive), UTC if no zone."
            ),
            click.option("--until", type=_Time(), help="Up to this time (exclusive)."),
            click.option("--event", help="Transaction (ITI-38) or DICOM event code (110113)."),
            click.option("--user", help="Part of a requesting user's id, any case."),
            click.option("--outcome", type=click.Choice(["success", "failure"])),
        )
    ):
        fn = option(fn)
    return fn


def _open(config: Config, database_url: str | None) -> tuple[Database, str]:
    from gateway.store.migrate import ensure_current

    url = database_url or config.database_url
    ensure_current(url)
    db = Database(url, pool_size=1)
    return db, db.url.render_as_string(hide_password=True)


def _log_used(config: Config, db: Database, where: str) -> None:
    """Audit Log Used in the store that was read, owed to the configured repositories."""
    message = audit_log_used(
        Occasion(audit_source(config), datetime.now(UTC)),
        accessor=Endpoint(getpass.getuser(), host=socket.gethostname()),
        audit_log_uri=where,
    )
    AuditQueue(db, config.audit).enqueue_now(message)


@click.group("audit")
def audit_group() -> None:
    """Search and export the audit trail (what this node audited or received)."""


@audit_group.command("search")
@config_option
@_database_option
@_filters
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True)
def search_command(config_path: Path, database_url: str | None, limit: int, **filters) -> None:
    """Print matching audit records as a table, oldest first."""
    config = load_config_or_exit(config_path)
    db, where = _open(config, database_url)
    try:
        count = 0
        for line in table_lines(search(db, AuditQuery(**filters, limit=limit))):
            click.echo(line)
            count += 1
        click.echo(f"{count - 1} record(s)" + (f" (limit {limit})" if count - 1 == limit else ""))
        _log_used(config, db, where)
    finally:
        db.dispose()


@audit_group.command("export")
@config_option
@_database_option
@_filters
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
def export_command(
    config_path: Path, database_url: str | None, output: Path | None, **filters
) -> None:
    """Write matching records as JSON lines (fields and the audit XML), oldest first."""
    config = load_config_or_exit(config_path)
    db, where = _open(config, database_url)
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        for found in search(db, AuditQuery(**filters)):
            stream.write(json.dumps(found.as_json(), ensure_ascii=False) + "\n")
            count += 1
        _log_used(config, db, where)
    finally:
        if output:
            stream.close()
        db.dispose()
    if output:
        click.echo(f"{count} record(s) written to {output}", err=True)


@click.command("audit-repository")
@config_option
@_database_option
@click.option("--host", default=None, help="Listen address (default: server.host).")
@click.option("--tls-port", type=click.IntRange(0, 65535), default=6514, show_default=True)
@click.option("--udp-port", type=click.IntRange(0, 65535), default=None, help="Also listen on UDP.")
def audit_repository_command(
    config_path: Path,
    database_url: str | None,
    host: str | None,
    tls_port: int,
    udp_port: int | None,
) -> None:
    """Run an audit record repository: syslog over TLS (and UDP), validated and stored."""
    import wsdl
    from gateway.audit.repository import AuditRepository
    from gateway.audit.transport import server_context
    from gateway.logs import configure_logging

    configure_logging()
    config = load_config_or_exit(config_path)
    if config.tls is None:
        raise click.ClickException("the TLS listener needs [tls] certificate, key and trust store")
    db, where = _open(config, database_url)
    repo = AuditRepository(
        db,
        host=host or config.server.host,
        tls_port=tls_port,
        udp_port=udp_port,
        tls_context=server_context(config.tls),
        schema=wsdl.schema("atna"),
    )
    auditor = Auditor.from_config(config, db)
    auditor.queue = AuditQueue(db)  # its own node events stay in its own store
    signal.signal(signal.SIGTERM, lambda *_: repo.request_stop())
    repo.start()
    auditor.application_activity(True, launcher=getpass.getuser())
    log.info(
        "audit repository listening: tls %s, udp %s, store %s",
        repo.tls_address,
        repo.udp_address,
        where,
    )
    try:
        repo.wait()
    except KeyboardInterrupt:
        pass
    finally:
        repo.stop()
        auditor.application_activity(False, launcher=getpass.getuser())
        db.dispose()
