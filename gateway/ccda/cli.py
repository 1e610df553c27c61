"""The C-CDA halves of ``ihe-gateway documents import`` and ``documents show``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from gateway.clicommon import config_option, load_config_or_exit

SNIFF_BYTES = 64 * 1024


def looks_like_cda(path: Path) -> bool:
    """A file whose start names the CDA namespace and ClinicalDocument."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    return b"urn:hl7-org:v3" in head and b"ClinicalDocument" in head


def import_cda_files(config, files: Sequence[Path], *, patient: str | None, strict: bool,
                     schematron: bool, verbose: bool) -> int:
    """Import ``files`` as C-CDA; print a line per file and a summary; return the exit code."""
    from gateway.ccda.importer import (
        FAILED,
        IMPORTED,
        PRESENT,
        REFUSED,
        Importer,
        settings_from_config,
    )

    try:
        settings = settings_from_config(config)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    if strict or schematron:
        from dataclasses import replace

        settings = replace(settings, strict=settings.strict or strict,
                           schematron=settings.schematron or schematron)
    counts = dict.fromkeys((IMPORTED, PRESENT, REFUSED, FAILED), 0)
    from gateway.ccda.schematron import SchematronUnavailable

    with Importer(config, settings) as importer:
        for file in files:
            try:
                r = importer.import_file(file, patient=patient)
            except SchematronUnavailable as exc:
                click.echo(f"error: {exc}", err=True)
                return 2
            counts[r.status] += 1
            errors = sum(f.severity == "error" for f in r.findings)
            detail = f" {r.unique_id}" if r.unique_id else ""
            detail += f" patient {r.patient_id}" if r.patient_id else ""
            detail += f" ({r.document_type})" if r.document_type else ""
            line = f"{r.status}: {file}{detail}"
            if r.findings:
                line += f" [{len(r.findings)} findings, {errors} errors]"
            if r.message:
                line += f": {r.message}"
            err = r.status in (REFUSED, FAILED)
            click.echo(line, err=err)
            for f in r.findings:
                if verbose or f.severity == "error":
                    click.echo(f"    {f}", err=err)
    click.echo(f"{len(files)} file(s): {counts[IMPORTED]} imported, {counts[PRESENT]} already "
               f"present, {counts[REFUSED]} refused, {counts[FAILED]} failed")
    return 1 if counts[REFUSED] or counts[FAILED] else 0


@click.command("show")
@click.argument("unique_id")
@click.option("--html", "html_out", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the rendered document to this file ('-' for standard output).")
@config_option
def show_document(unique_id: str, html_out: Path, config_path: Path) -> None:
    """Render stored C-CDA document UNIQUE_ID (its uniqueId) as safe HTML."""
    from gateway.ccda.importer import render_stored
    from profiles.ccda.cda import NotACdaDocument

    config = load_config_or_exit(config_path)
    try:
        page = render_stored(config, unique_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except NotACdaDocument as exc:
        raise click.ClickException(f"document {unique_id} is not a CDA document: {exc}") from None
    if str(html_out) == "-":
        click.echo(page.decode("utf-8"))
        return
    html_out.write_bytes(page)
    click.echo(f"wrote {html_out} ({len(page)} bytes)")
