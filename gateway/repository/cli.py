"""``ihe-gateway documents import FILE... [--patient ID]``: register files as documents.

A CDA document (its start names ``ClinicalDocument`` in ``urn:hl7-org:v3``), and
every file when no ``--patient`` is given, is imported as C-CDA with the metadata
its header carries (``gateway.ccda``: patient mapped through the patient index,
idempotent on its uniqueId, a line per file and a summary; ``--strict`` refuses
a document failing the CDA schema). Any other file needs ``--patient`` and gets
the generic metadata below.

The file goes through the same code path as an ITI-41 Provide and Register
(``profiles.xds.iti41.provide_and_register``): stored in the blob store, hash
and size measured, registered in the registry with its repository row, all or
nothing. The metadata is minimal and generic (title = file name, formatCode
"mimeTypeSufficient"); each code can be given as ``CODE^^SCHEME`` (the ITI-18
parameter form), optionally ``CODE^DISPLAY^SCHEME``. A patient id the registry
does not know is refused (XDSUnknownPatientId): add it first with
``ihe-gateway patients add``.
"""

from __future__ import annotations

import hashlib
import mimetypes
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import click

from gateway.clicommon import load_config_or_exit
from gateway.config import Config
from gateway.ports import build_ports
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.migrate import ensure_current
from profiles.errors import GatewayError
from profiles.transaction import Attachment
from profiles.xds.codes import AssociationType, SubmissionSetStatus
from profiles.xds.iti41 import ProvideAndRegisterRequest, provide_and_register
from profiles.xds.metadata import (
    Association,
    Code,
    DocumentEntry,
    LocalizedString,
    Submission,
    SubmissionSet,
)
from profiles.xds.values import CX, dtm_from_datetime

LOINC = "2.16.840.1.113883.6.1"
SNOMED = "2.16.840.1.113883.6.96"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"

DEFAULTS = {
    "class_code": f"34133-9^Summary of episode note^{LOINC}",
    "type_code": f"34133-9^Summary of episode note^{LOINC}",
    "format_code": f"urn:ihe:iti:xds:2017:mimeTypeSufficient^mimeType Sufficient^{IHE_FORMAT}",
    "confidentiality_code": f"N^normal^{CONFIDENTIALITY}",
    "facility_code": f"35971002^Ambulatory care site^{SNOMED}",
    "practice_code": f"394802001^General medicine^{SNOMED}",
}


class _Code(click.ParamType):
    name = "CODE^^SCHEME"

    def convert(self, value, param, ctx) -> Code:
        if isinstance(value, Code):
            return value
        parts = value.split("^")
        if len(parts) != 3 or not parts[0] or not parts[2]:
            self.fail(f"{value!r} is not CODE^^SCHEME or CODE^DISPLAY^SCHEME", param, ctx)
        return Code(parts[0], parts[2], parts[1] or parts[0])


class _Patient(click.ParamType):
    name = "ID^^^&OID&ISO"

    def convert(self, value, param, ctx) -> str:
        try:
            return str(CX.parse(value))
        except GatewayError as exc:
            self.fail(exc.context, param, ctx)


def _code_option(flag: str, key: str, what: str):
    return click.option(
        flag, key, type=_Code(), default=DEFAULTS[key], show_default=True, help=what
    )


def new_unique_id() -> str:
    """An OID under 2.25 (ISO/IEC 9834-8: a UUID as an integer): unique without a registry."""
    return f"2.25.{uuid.uuid4().int}"


def _sha1(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha1(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def build_submission(
    *,
    patient: str,
    title: str,
    mime_type: str,
    codes: dict[str, Code],
    now: datetime,
    source_id: str,
    document_id: str = "Document01",
) -> Submission:
    """The minimal complete metadata for one document and its SubmissionSet."""
    time = dtm_from_datetime(now)
    entry = DocumentEntry(
        entry_uuid=document_id,
        unique_id=new_unique_id(),
        patient_id=patient,
        source_patient_id=patient,
        mime_type=mime_type,
        title=LocalizedString(title),
        class_code=codes["class_code"],
        type_code=codes["type_code"],
        format_code=codes["format_code"],
        confidentiality_codes=(codes["confidentiality_code"],),
        healthcare_facility_type_code=codes["facility_code"],
        practice_setting_code=codes["practice_code"],
        creation_time=time,
        language_code="en-US",
    )
    ss = SubmissionSet(
        entry_uuid="SubmissionSet01",
        unique_id=new_unique_id(),
        source_id=source_id,
        patient_id=patient,
        submission_time=time,
        content_type_code=codes["class_code"],
        title=LocalizedString(f"Imported {title}"),
    )
    member = Association(
        entry_uuid="Association01",
        type=AssociationType.HAS_MEMBER,
        source=ss.entry_uuid,
        target=entry.entry_uuid,
        submission_set_status=SubmissionSetStatus.ORIGINAL,
    )
    return Submission(submission_set=ss, document_entries=(entry,), associations=(member,))


def import_file(
    config: Config,
    file: Path,
    *,
    patient: str,
    codes: dict[str, Code],
    mime_type: str | None = None,
    title: str | None = None,
) -> DocumentEntry:
    """Register ``file``; return its DocumentEntry as registered (hash, size, ids)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_current(config.database_url)
    # Two connections: the registration holds one while the patient index asks on another.
    database = Database(config.database_url, pool_size=2, max_overflow=0)
    try:
        ports = build_ports(config, database, FileBlobStore(config.data_dir / "blobs"))
        repository = ports.repository
        mime = mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        sha1, size = _sha1(file)
        now = datetime.now(UTC)
        submission = build_submission(
            patient=patient,
            title=title or file.name,
            mime_type=mime,
            codes=codes,
            now=now,
            source_id=config.community.oid,
        )
        # No ``path``: the operator's file is copied into the blob store, never moved.
        content = Attachment("file", mime, size, sha1, partial(open, file, "rb"))
        request = ProvideAndRegisterRequest(submission, {"Document01": content})
        provide_and_register(request, repository, actor="repository", time=dtm_from_datetime(now))
        return replace(
            submission.document_entries[0],
            hash=sha1,
            size=size,
            repository_unique_id=repository.repository_unique_id,
        )
    finally:
        database.dispose()


@click.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--patient", default=None, type=_Patient(),
              help="Patient id, ID^^^&OID&ISO (C-CDA: overrides the recordTarget mapping).")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Path to gateway.toml.",
)
@click.option("--strict", is_flag=True, help="C-CDA: refuse a document failing the CDA schema.")
@click.option("--schematron", is_flag=True,
              help="C-CDA: also check the C-CDA R2.1 Schematron (needs the 'ccda' extra).")
@click.option("--verbose", "-v", is_flag=True, help="C-CDA: print every finding, not only errors.")
@click.option("--mime-type", default=None, help="Default: guessed from the file name.")
@click.option("--title", default=None, help="Default: the file name.")
@_code_option("--class-code", "class_code", "DocumentEntry.classCode.")
@_code_option("--type-code", "type_code", "DocumentEntry.typeCode.")
@_code_option("--format-code", "format_code", "DocumentEntry.formatCode.")
@_code_option("--confidentiality-code", "confidentiality_code", "confidentialityCode.")
@_code_option("--facility-code", "facility_code", "healthcareFacilityTypeCode.")
@_code_option("--practice-code", "practice_code", "practiceSettingCode.")
def import_document(
    files: tuple[Path, ...],
    patient: str | None,
    config_path: Path,
    strict: bool,
    schematron: bool,
    verbose: bool,
    mime_type: str | None,
    title: str | None,
    **codes: Code,
) -> None:
    """Register FILES in the local repository and registry (C-CDA: metadata from the
    document; other files: of patient ID, with the metadata options)."""
    from gateway.ccda.cli import import_cda_files, looks_like_cda

    config = load_config_or_exit(config_path)
    cda = [f for f in files if patient is None or looks_like_cda(f)]
    others = [f for f in files if f not in cda]
    status = 0
    if cda:
        status = import_cda_files(config, cda, patient=patient, strict=strict,
                                  schematron=schematron, verbose=verbose)
    for file in others:
        assert patient is not None
        try:
            entry = import_file(
                config, file, patient=patient, codes=codes, mime_type=mime_type, title=title
            )
        except GatewayError as exc:
            for d in exc.details:
                where = f" ({d.location})" if d.location else ""
                click.echo(f"error: {d.code}{where}: {d.context}", err=True)
            status = 1
            continue
        click.echo(f"registered {entry.unique_id}")
        click.echo(f"  patient     {entry.patient_id}")
        click.echo(f"  mimeType    {entry.mime_type}")
        click.echo(f"  size        {entry.size}")
        click.echo(f"  hash        {entry.hash}")
        click.echo(f"  repository  {entry.repository_unique_id}")
    if status:
        sys.exit(status)
