"""Importing C-CDA files into the local repository and registry, and showing them.

Each file goes through ``profiles.ccda`` (parse, extract, schema findings) and
then through the same code path as an ITI-41 Provide and Register
(``provide_and_register``), all or nothing per file. The patient id is the
document's recordTarget id mapped through the patient index (``map_patient``)
unless the operator names one. Import is idempotent on the document's uniqueId:
the same bytes again are "already present"; different bytes under a uniqueId the
registry holds are refused (ITI TF-3 4.2.3.2.26). A document failing the CDA
schema is accepted with its findings logged, unless ``strict``.

Settings come from ``config.ccda`` when the configuration carries a ``[ccda]``
table (see ``settings_from_table`` for its keys), else the built-in defaults.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.ports import build_ports
from gateway.registry.store import SqlRegistryTransaction
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.migrate import ensure_current
from profiles.ccda.cda import SSN_ROOT, Finding, NotACdaDocument, is_oid, parse_document
from profiles.ccda.extract import Defaults, Extraction, extract
from profiles.ccda.render import render_html
from profiles.ccda.validate import has_errors, schema_findings, schematron_findings
from profiles.errors import GatewayError
from profiles.hl7v3.datatypes import II
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
from profiles.xds.values import dtm_from_datetime

log = logging.getLogger("gateway.ccda")
IMPORTED, PRESENT, REFUSED, FAILED = "imported", "already present", "refused", "failed"


@dataclass(frozen=True)
class CcdaSettings:
    defaults: Defaults = field(default_factory=Defaults)
    strict: bool = False  # refuse a document that fails the CDA schema
    schematron: bool = False  # also run the C-CDA R2.1 Schematron (needs the ccda extra)
    max_bytes: int = 64 * 1024 * 1024


def _code(value: str, key: str) -> Code:
    parts = value.split("^")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise ValueError(f"ccda.{key}: {value!r} is not CODE^DISPLAY^SCHEME")
    return Code(parts[0], parts[2], parts[1] or parts[0])


_CODE_KEYS = {"type_code": "type_code", "format_code": "format_code",
              "confidentiality_code": "confidentiality_code",
              "facility_code": "healthcare_facility_type_code",
              "practice_code": "practice_setting_code"}
_TEXT_KEYS = ("language_code", "author_role", "assume_offset", "patient_domain")


def settings_from_table(table: dict[str, Any]) -> CcdaSettings:
    """A ``[ccda]`` table: ``strict``, ``schematron`` (booleans); ``type_code``,
    ``format_code``, ``confidentiality_code``, ``facility_code``, ``practice_code``
    (``CODE^DISPLAY^SCHEME``); ``class_codes`` (typeCode -> classCode, same form);
    ``language_code``, ``author_role``, ``assume_offset`` (``-0500``) and
    ``patient_domain`` (the affinity domain's assigning authority OID). ValueError
    names a bad key."""
    known = {"strict", "schematron", "class_codes", *_CODE_KEYS, *_TEXT_KEYS}
    if unknown := sorted(set(table) - known):
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    for key in ("strict", "schematron"):
        if key in table and not isinstance(table[key], bool):
            raise ValueError(f"{key}: expected a boolean")
    changes: dict[str, Any] = {}
    for key, attr in _CODE_KEYS.items():
        if key in table:
            changes[attr] = _code(str(table[key]), key)
    for key in _TEXT_KEYS:
        if key in table:
            changes[key] = str(table[key])
    if "class_codes" in table:
        changes["class_codes"] = {k: _code(str(v), f"class_codes.{k}")
                                  for k, v in dict(table["class_codes"]).items()}
    return CcdaSettings(defaults=Defaults(**changes), strict=bool(table.get("strict", False)),
                        schematron=bool(table.get("schematron", False)))


def settings_from_config(config: Config) -> CcdaSettings:
    found = getattr(config, "ccda", None)
    if isinstance(found, CcdaSettings):
        return found
    return settings_from_table(found) if isinstance(found, dict) else CcdaSettings()


@dataclass(frozen=True)
class ImportResult:
    file: Path
    status: str
    message: str = ""
    unique_id: str | None = None
    patient_id: str | None = None
    document_type: str | None = None
    findings: tuple[Finding, ...] = ()


def map_patient(index: Any, ids: Sequence[tuple[str, str]], domain: str | None) -> str | None:
    """Our patient id (CX) for a document's recordTarget ids, or None.

    With ``domain`` (the affinity domain), the id in that domain: the document's own
    if the index knows it, else one cross-referenced to any of the document's ids.
    Without, the first of the document's ids the index knows (an SSN last), else the
    survivor of a merged one.
    """
    cands = [II(root=r, extension=e) for r, e in ids if is_oid(r) and e]
    cands.sort(key=lambda i: i.root == SSN_ROOT)
    if domain:
        for ii in cands:
            if ii.root == domain and index.known(ii):
                return str(ii)
        for ii in cands:
            for other in index.cross_references(ii):
                if other.root == domain:
                    return str(other)
        return None
    for ii in cands:
        if index.known(ii):
            return str(ii)
    for ii in cands:
        if (survivor := index.merged_into(ii)) is not None:
            return str(survivor)
    return None


class Importer:
    """One database for a batch of files; ``run`` imports each and says what happened."""

    def __init__(self, config: Config, settings: CcdaSettings | None = None) -> None:
        self.config = config
        self.settings = settings or settings_from_config(config)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_current(config.database_url)
        self.database = Database(config.database_url, pool_size=2, max_overflow=0)
        self.ports = build_ports(config, self.database, FileBlobStore(config.data_dir / "blobs"))
        self._schematron = None

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> Importer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, files: Iterable[Path], *, patient: str | None = None) -> list[ImportResult]:
        return [self.import_file(Path(f), patient=patient) for f in files]

    def check(self, data: bytes, now: str) -> tuple[Extraction, list[Finding], list[Finding]]:
        """Parse, extract and validate; (extraction, all findings, validation findings)."""
        root = parse_document(data, max_bytes=self.settings.max_bytes)
        extraction = extract(root, self.settings.defaults, now=now)
        checks = schema_findings(root, _cda_schema())
        if self.settings.schematron:
            if self._schematron is None:
                from gateway.ccda.schematron import compiled_schematron

                self._schematron = compiled_schematron(self.config.data_dir / "schematron")
            checks += schematron_findings(root, self._schematron)
        return extraction, [*extraction.findings, *checks], checks

    def import_file(self, file: Path, *, patient: str | None = None) -> ImportResult:
        now = dtm_from_datetime(datetime.now(UTC))
        try:
            data = file.read_bytes()
            extraction, findings, checks = self.check(data, now)
        except (OSError, NotACdaDocument) as exc:
            return ImportResult(file, FAILED, f"not a CDA document: {exc}")
        if patient:  # the operator named the patient: the document's ids do not matter
            findings = [Finding("info", f.field, f"{f.message} (--patient given)")
                        if f.field == "patientId" else f for f in findings]
        entry, found = extraction.entry, tuple(findings)
        result = partial_result(file, extraction, found)
        if self.settings.strict and has_errors(checks):
            first = next(f for f in checks if f.severity == "error")
            return replace(result, status=REFUSED, message=f"fails validation ({first}); "
                           f"{sum(f.severity == 'error' for f in checks)} error(s), strict mode")
        if entry.unique_id is None:
            return replace(result, status=FAILED, message="the document has no usable id")
        pid = patient or map_patient(self.ports.patients, extraction.patient_ids,
                                     self.settings.defaults.patient_domain)
        if pid is None:
            ids = ", ".join(f"{e}^^^&{r}&ISO" for r, e in extraction.patient_ids) or "none"
            return replace(result, status=FAILED, message=f"no patient in the index matches "
                           f"the recordTarget ids ({ids}); add one or pass --patient")
        result = replace(result, patient_id=pid)
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        held = self._held(entry.unique_id)
        if held is not None:
            if held.hash and held.hash.lower() == sha1:
                return replace(result, status=PRESENT, message="same document already registered")
            return replace(result, status=FAILED, message=f"uniqueId {entry.unique_id} is "
                           f"registered for a different document (hash {held.hash}, this "
                           f"file {sha1}): a new version needs a new ClinicalDocument/id")
        entry = replace(entry, patient_id=pid, source_patient_id=entry.source_patient_id or pid)
        try:
            provide_and_register(
                ProvideAndRegisterRequest(_submission(entry, pid, now, self.config),
                                          {"Document01": data}),
                self.ports.repository, actor="repository", time=now)
        except GatewayError as exc:
            why = "; ".join(f"{d.code}: {d.context}" for d in exc.details)
            return replace(result, status=FAILED, message=why)
        for f in found:
            log.log(logging.WARNING if f.severity == "error" else logging.INFO,
                    "C-CDA %s %s", entry.unique_id, f)
        return replace(result, status=IMPORTED)

    def _held(self, unique_id: str) -> DocumentEntry | None:
        with self.database.session() as session:
            tx = SqlRegistryTransaction(session, lambda _pid: False)
            for obj in tx.by_unique_id(unique_id):
                return obj if isinstance(obj, DocumentEntry) else DocumentEntry(
                    entry_uuid=obj.entry_uuid, hash="(not a document)")
        return None


def partial_result(file: Path, x: Extraction, findings: tuple[Finding, ...]) -> ImportResult:
    return ImportResult(file, FAILED, unique_id=x.entry.unique_id, document_type=x.document_type,
                        findings=findings)


def _new_oid() -> str:
    import uuid

    return f"2.25.{uuid.uuid4().int}"


def _submission(entry: DocumentEntry, patient: str, now: str, config: Config) -> Submission:
    ss = SubmissionSet(
        entry_uuid="SubmissionSet01",
        unique_id=_new_oid(),
        source_id=config.community.oid,
        patient_id=patient,
        submission_time=now,
        content_type_code=entry.class_code,
        authors=entry.authors[:1],
        title=LocalizedString(f"Imported {entry.title.value if entry.title else 'C-CDA'}"[:128]),
    )
    member = Association(entry_uuid="Association01", type=AssociationType.HAS_MEMBER,
                         source=ss.entry_uuid, target=entry.entry_uuid,
                         submission_set_status=SubmissionSetStatus.ORIGINAL)
    return Submission(submission_set=ss, document_entries=(entry,), associations=(member,))


def _cda_schema():
    import wsdl

    return wsdl.schema("cda")


def render_stored(config: Config, unique_id: str) -> bytes:
    """The HTML page of stored document ``unique_id``; LookupError if the repository does
    not hold it, NotACdaDocument if it is not a CDA document."""
    from gateway.repository.store import SqlRepository

    config.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_current(config.database_url)
    database = Database(config.database_url, pool_size=1, max_overflow=0)
    try:
        repo = SqlRepository.from_config(config, database, FileBlobStore(config.data_dir / "blobs"))
        doc = repo.find([unique_id]).get(unique_id)
        if doc is None:
            raise LookupError(f"the repository holds no document {unique_id}")
        data = b"".join(repo.chunks(doc))
    finally:
        database.dispose()
    return render_html(parse_document(data))
