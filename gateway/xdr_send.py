"""``ihe-gateway documents send FILE --partner HCID``: XDR (ITI-41) to a partner.

The document goes point to point to the partner's XDR endpoint (``Partner.endpoint
("ITI-41")``) as an MTOM attachment, over mutual TLS with a signed XUA assertion
speaking for the gateway itself (``gateway.xca.wiring.system_principal``), the way
the initiating gateway calls partners. Metadata comes from the same code as
``documents import``: a C-CDA's header (``gateway.ccda.importer``), other files the
generic metadata of ``gateway.repository.cli.build_submission``.

    send_document(config, file, partner_id, *, patient=None, codes=None,
                  mime_type=None, transport=None) -> RegistryResponse
"""

from __future__ import annotations

import mimetypes
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.clicommon import config_option, load_config_or_exit
from gateway.client import OutboundClient
from gateway.config import Config
from gateway.partners.directory import PartnerDirectory
from gateway.repository.cli import DEFAULTS, _Code, _Patient, build_submission
from gateway.soap import mtom
from gateway.transport import OutboundError, Transport, default_transport
from gateway.xca.wiring import system_principal, xua_security
from profiles.errors import GatewayError
from profiles.transaction import OutgoingAttachment
from profiles.xds.ebrim import XopInclude, parse_registry_response, provide_and_register_to_xml
from profiles.xds.metadata import Code, Submission
from profiles.xds.values import dtm_from_datetime
from profiles.xua import AssertionCache, SigningCredentials

ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
REPLY = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
CONTENT_ID = "document01@ihe-gateway"


class SendError(Exception):
    """The document could not be sent (no such partner, no metadata, no answer)."""


def _cda_submission(config: Config, data: bytes, patient: str | None) -> Submission:
    from gateway.ccda.importer import Importer, _submission, map_patient

    now = dtm_from_datetime(datetime.now(UTC))
    with Importer(config) as importer:
        extraction, _findings, _checks = importer.check(data, now)
        entry = extraction.entry
        if entry.unique_id is None:
            raise SendError("the document has no usable id")
        pid = patient or map_patient(importer.ports.patients, extraction.patient_ids,
                                     importer.settings.defaults.patient_domain)
    if pid is None:
        raise SendError("no patient in the index matches the recordTarget ids; pass --patient")
    entry = replace(entry, patient_id=pid, source_patient_id=entry.source_patient_id or pid)
    return _submission(entry, pid, now, config)


def _client(config: Config, transport: Transport | None) -> OutboundClient:
    security = None
    if config.tls is not None:
        credentials = SigningCredentials.from_pem(
            config.tls.private_key.read_bytes(), config.tls.certificate.read_bytes())
        from gateway.ports import SystemClock

        security = xua_security(credentials, system_principal(config), SystemClock(),
                                AssertionCache())
    return OutboundClient(transport or default_transport(config), security=security,
                          max_message_bytes=config.limits.max_message_bytes,
                          max_attachment_bytes=config.limits.max_attachment_bytes)


def send_document(
    config: Config, file: Path, partner_id: str, *, patient: str | None = None,
    codes: dict[str, Code] | None = None, mime_type: str | None = None,
    transport: Transport | None = None,
):
    """Send ``file`` to the partner's /xdr; the partner's RegistryResponse."""
    from gateway.ccda.cli import looks_like_cda
    from gateway.store.db import Database

    data = file.read_bytes()
    database = Database(config.database_url, pool_size=1, max_overflow=0)
    try:
        partner = PartnerDirectory(list(config.partners), database).get(partner_id)
    finally:
        database.dispose()
    if partner is None:
        raise SendError(f"no partner {partner_id}")
    if looks_like_cda(file):
        submission = _cda_submission(config, data, patient)
        mime = "text/xml"
    else:
        if patient is None:
            raise SendError("a file that is not C-CDA needs --patient")
        mime = mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        submission = build_submission(
            patient=patient, title=file.name, mime_type=mime, codes=codes or {},
            now=datetime.now(UTC), source_id=config.community.oid)
    doc_id = submission.document_entries[0].entry_uuid
    body = provide_and_register_to_xml(submission, {doc_id: XopInclude(mtom.href_for(CONTENT_ID))})
    part = OutgoingAttachment(CONTENT_ID, mime, lambda: iter((data,)), len(data))
    client = _client(config, transport)
    answer = client.call(partner, "ITI-41", ACTION, body, attachments=(part,),
                         mtom_request=True, expect_action=REPLY)
    try:
        return parse_registry_response(answer.body)
    finally:
        answer.close()


def _code_options(f):
    for flag, key in (("--format-code", "format_code"), ("--type-code", "type_code"),
                      ("--class-code", "class_code")):
        f = click.option(flag, key, type=_Code(), default=DEFAULTS[key], show_default=True,
                         help=f"Non-CDA files: DocumentEntry.{key}.")(f)
    return f


@click.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", "partner_id", required=True, help="The partner's homeCommunityId.")
@click.option("--patient", default=None, type=_Patient(),
              help="Patient id as the partner knows it, ID^^^&OID&ISO.")
@config_option
@click.option("--mime-type", default=None, help="Non-CDA files; default: from the name.")
@_code_options
def send_command(file: Path, partner_id: str, patient: str | None, config_path: Path,
                 mime_type: str | None, **codes: Code) -> None:
    """Send FILE to a partner's XDR endpoint (ITI-41 MTOM); print its answer."""
    config = load_config_or_exit(config_path)
    full = {k: _Code().convert(v, None, None) for k, v in DEFAULTS.items()} | codes
    try:
        result = send_document(config, file, partner_id, patient=patient, codes=full,
                               mime_type=mime_type)
    except (SendError, GatewayError, OutboundError) as exc:
        why = getattr(exc, "reason", None) or "; ".join(
            f"{d.code}: {d.context}" for d in getattr(exc, "details", ())) or str(exc)
        click.echo(f"error: {why}", err=True)
        sys.exit(1)
    click.echo(f"status {result.status.value.rsplit(':', 1)[-1]}")
    for d in result.errors:
        where = f" ({d.location})" if d.location else ""
        click.echo(f"  {d.severity.value.rsplit(':', 1)[-1]} {d.code}{where}: {d.context}")
    if not result.ok:
        sys.exit(1)
