"""``ihe-gateway documents list``: a patient's DocumentEntries as a table
(``documents show``, the C-CDA rendering, lives in ``gateway.ccda.cli``).

The patient id is written in CX form, ``ID^^^&OID&ISO`` (quote it in a shell).
Like every command it first brings the database to the current schema.
"""

from __future__ import annotations

from pathlib import Path

import click

from gateway.clicommon import config_option, load_config_or_exit
from gateway.registry.store import SqlRegistry
from gateway.store.db import Database
from gateway.store.migrate import ensure_current
from profiles.errors import GatewayError
from profiles.xds.metadata import DocumentEntry
from profiles.xds.values import CX

_COLUMNS = ("uniqueId", "status", "created", "class", "mimeType", "title", "entryUUID")


def _row(d: DocumentEntry) -> tuple[str, ...]:
    status = d.availability_status.value.rsplit(":", 1)[-1] if d.availability_status else ""
    klass = d.class_code.display or d.class_code.code if d.class_code else ""
    return (d.unique_id or "", status, d.creation_time or "", klass, d.mime_type or "",
            d.title.value if d.title else "", d.entry_uuid)


def format_table(entries: list[DocumentEntry]) -> str:
    """Fixed-width columns, one line per entry, a header first."""
    rows = [_COLUMNS, *(_row(d) for d in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@click.group("documents")
def documents_group() -> None:
    """The document registry's contents."""


@documents_group.command("list")
@click.option("--patient", "patient_id", required=True, help="Patient id: ID^^^&OID&ISO.")
@config_option
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def list_documents(patient_id: str, config_path: Path, limit: int) -> None:
    """Print the patient's DocumentEntries, oldest registration first."""
    try:
        CX.parse(patient_id)
    except GatewayError as exc:
        raise click.BadParameter(exc.context, param_hint="--patient") from None
    config = load_config_or_exit(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_current(config.database_url)
    database = Database(config.database_url, pool_size=1, max_overflow=0)
    try:
        entries = SqlRegistry(database).documents_of(patient_id, limit=limit)
    finally:
        database.dispose()
    if not entries:
        click.echo(f"no documents for {patient_id}")
        return
    click.echo(format_table(entries))


def _register_show() -> None:
    from gateway.ccda.cli import show_document

    documents_group.add_command(show_document)
    from gateway.xdr_send import send_command

    documents_group.add_command(send_command)


_register_show()
