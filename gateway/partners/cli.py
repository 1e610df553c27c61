"""``ihe-gateway partners add|list|show|remove|test``: the CLI-managed partner directory.

``add`` registers another gateway by its base URL (endpoints follow our own path
layout under it) and the CA that issued its certificates; ``--endpoint ITI-38=URL``
overrides one transaction for gateways laid out differently. That CA is trusted
for inbound mutual TLS too (``gateway.partners.trust``: backed up, audited, applied
live by SIGHUP) and the XUA gate's identity check knows the partner within seconds;
``remove`` undoes both. ``test`` sends a real ITI-38 FindDocuments over mutual TLS
and reports the latency and any error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from certs.changes import ChangeRefused
from gateway.clicommon import config_option, load_config_or_exit
from gateway.config import Config
from gateway.partners.directory import PartnerDirectory, describe
from gateway.partners.model import (
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_TIMEOUT_S,
    SUBJECT_ID_FORMATS,
    Partner,
    PartnerError,
    Quirks,
    endpoints_for,
)
from gateway.partners.trust import label, layout_of, release_partner, trust_partner
from gateway.store.db import Database
from gateway.store.migrate import ensure_current


def _directory(config: Config) -> tuple[PartnerDirectory, Database]:

    config.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_current(config.database_url)
    database = Database(config.database_url, pool_size=1, max_overflow=0)
    return PartnerDirectory(list(config.partners), database), database


def _endpoint(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        txn, sep, url = value.partition("=")
        if not sep or not url:
            raise click.BadParameter(f"{value!r}: expected TRANSACTION=URL, e.g. ITI-38=https://...")
        out[txn.strip().upper()] = url.strip()
    return out


@click.group("partners")
def partners_group() -> None:
    """Partner communities: register, list, show, remove and test them."""


@partners_group.command("add")
@config_option
@click.option("--home-community-id", "hcid", required=True, help="The partner's OID.")
@click.option("--name", required=True)
@click.option("--url", "base_url", default="", help="Base URL of a gateway laid out like ours.")
@click.option("--ca", "ca_file", required=True, type=click.Path(dir_okay=False, exists=True,
              path_type=Path), help="PEM of the CA(s) its server certificate must chain to.")
@click.option("--endpoint", "endpoints", multiple=True, callback=_endpoint,
              metavar="ITI-NN=URL", help="Override one transaction's endpoint (repeatable).")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=DEFAULT_TIMEOUT_S,
              show_default=True, help="Seconds per call.")
@click.option("--max-documents", type=click.IntRange(min=1), default=DEFAULT_MAX_DOCUMENTS,
              show_default=True, help="DocumentRequests per ITI-39.")
@click.option("--sha1", is_flag=True, help="Sign SAML with RSA-SHA1 (Kno2, CONNECT < 5.3).")
@click.option("--purpose-for-use", is_flag=True, help="2010 PurposeForUse element (Epic).")
@click.option("--no-urn-oid", is_flag=True, help="Bare OIDs for homeCommunityId.")
@click.option("--repository-urn-oid", is_flag=True, help="urn:oid: on RepositoryUniqueId.")
@click.option("--subject-id-format", type=click.Choice(SUBJECT_ID_FORMATS), default="uri",
              show_default=True, help="NameFormat of the subject-id attribute.")
@click.option("--namespaces-on-envelope", is_flag=True,
              help="Declare body namespaces on the SOAP Envelope.")
@click.option("--replace", is_flag=True, help="Update a partner already registered.")
def add(config_path, hcid, name, base_url, ca_file, endpoints, timeout, max_documents, sha1,
        purpose_for_use, no_urn_oid, repository_urn_oid, subject_id_format,
        namespaces_on_envelope, replace) -> None:
    """Register a partner community in the database; trust its CA for inbound TLS."""
    config = load_config_or_exit(config_path)
    try:
        quirks = Quirks(
            signature_hash="sha1" if sha1 else "sha256",
            purpose_element="PurposeForUse" if purpose_for_use else "PurposeOfUse",
            urn_oid_prefix=not no_urn_oid,
            repository_urn_oid=repository_urn_oid,
            subject_id_format=subject_id_format,
            namespace_placement="envelope" if namespaces_on_envelope else "payload",
        )
        resolved = endpoints_for(base_url, endpoints)
        if not resolved:
            raise PartnerError("give --url or at least one --endpoint")
        ca_pem = ca_file.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise PartnerError(f"{ca_file} holds no PEM certificate")
        partner = Partner(hcid, name, resolved, ca_pem, timeout, max_documents, quirks,
                          base_url, "database")
        directory, database = _directory(config)
        try:
            previous = directory.get(partner.home_community_id) if replace else None
            directory.add(partner, replace=replace)
            change = _trust_inbound(config, directory, partner, previous)
        finally:
            database.dispose()
    except PartnerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {partner.home_community_id} ({partner.name})")
    for txn, url in sorted(partner.endpoints.items()):
        click.echo(f"  {txn}  {url}")
    _apply(config, change)


def _trust_inbound(config: Config, directory: PartnerDirectory, partner: Partner,
                   previous: Partner | None) -> tuple[str, str]:
    """Its CA into the TLS trust store (what the old entry alone brought in leaves);
    the stored entry is undone when the trust store refuses the change."""
    layout = layout_of(config)
    if layout is None:
        return (f"added partner {label(partner)}; no [tls]: inbound trust unchanged",
                f"ihe-gateway:partners/{partner.home_community_id}")
    try:
        done = [trust_partner(layout, partner)]
    except ChangeRefused as exc:
        if previous is not None:
            directory.add(previous, replace=True)
        else:
            directory.remove(partner.home_community_id)
        raise PartnerError(f"refused: {exc}") from None
    if previous is not None:
        done.append(release_partner(layout, previous, directory.all()) or "")
    return "; ".join(d for d in done if d), f"file://{layout.trust_store}"


def _apply(config: Config, change: tuple[str, str]) -> None:
    """Audit the change and SIGHUP a running server, as ``certs trust`` does."""
    from certs.cli import _finish

    _finish(config, *change)


@partners_group.command("list")
@config_option
def list_partners(config_path) -> None:
    """Every partner, from gateway.toml and the database."""
    directory, database = _directory(load_config_or_exit(config_path))
    try:
        partners = directory.all()
    finally:
        database.dispose()
    if not partners:
        click.echo("no partners")
    for p in partners:
        quirks = ",".join(f"{k}={v}" for k, v in p.quirks.differences().items()) or "-"
        click.echo(f"{p.home_community_id}\t{p.name}\t{p.source}\t{p.base_url or '-'}\t{quirks}")


def _get(directory: PartnerDirectory, hcid: str) -> Partner:
    partner = directory.get(hcid)
    if partner is None:
        raise click.ClickException(f"no partner {hcid}")
    return partner


@partners_group.command("show")
@config_option
@click.argument("hcid")
def show(config_path, hcid) -> None:
    """One partner's endpoints, limits and quirks."""
    directory, database = _directory(load_config_or_exit(config_path))
    try:
        partner = _get(directory, hcid)
    finally:
        database.dispose()
    for key, value in describe(partner).items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in sorted(value.items()):
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")


@partners_group.command("remove")
@config_option
@click.argument("hcid")
def remove(config_path, hcid) -> None:
    """Remove a CLI-registered partner (and the trust ``add`` gave its CA)."""
    config = load_config_or_exit(config_path)
    directory, database = _directory(config)
    try:
        partner = directory.get(hcid)
        removed = directory.remove(hcid)
        remaining = directory.all()
    except PartnerError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    if not removed or partner is None:
        raise click.ClickException(f"no partner {hcid} in the database")
    click.echo(f"removed {partner.home_community_id}")
    layout = layout_of(config)
    try:
        released = release_partner(layout, partner, remaining) if layout is not None else None
    except ChangeRefused as exc:
        click.echo(f"warning: its CA stays trusted: {exc}", err=True)
        released = None
    if released:
        _apply(config, (f"removed partner {label(partner)}; {released}",
                        f"file://{layout.trust_store}"))
    else:
        _apply(config, (f"removed partner {label(partner)}; trust store unchanged (its "
                        "certificates are another partner's or were trusted otherwise)",
                        f"ihe-gateway:partners/{partner.home_community_id}"))


def _security(config: Config):
    """Sign as the gateway itself (XUA), as the initiating gateway does without a user."""
    if config.tls is None:
        return None
    from gateway.ports import SystemClock
    from gateway.xca.wiring import system_principal, xua_security
    from profiles.xua import SigningCredentials

    credentials = SigningCredentials.from_pem(config.tls.private_key.read_bytes(),
                                              config.tls.certificate.read_bytes())
    return xua_security(credentials, system_principal(config), SystemClock())


@partners_group.command("test")
@config_option
@click.argument("hcid")
@click.option("--patient-id", default=None, help="CX patient id (default: a made-up one).")
def test(config_path, hcid, patient_id) -> None:
    """Send a real ITI-38 FindDocuments; report latency, status and any error."""
    from gateway.client import OutboundClient
    from gateway.transport import OutboundError, default_transport
    from profiles.xca.query import (
        ITI38_ACTION,
        ITI38_REPLY,
        read_query_response,
        stored_query_to_xml,
    )
    from profiles.xds.storedquery import QueryName, build

    config = load_config_or_exit(config_path)
    directory, database = _directory(config)
    try:
        partner = _get(directory, hcid)
    finally:
        database.dispose()
    pid = patient_id or f"ihe-gateway-test^^^&{config.community.oid}&ISO"
    query = build(QueryName.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": f"'{pid}'",
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"],
    })
    transport = default_transport(config)
    client = OutboundClient(transport, security=_security(config))
    click.echo(f"ITI-38 to {partner.endpoint('ITI-38')}")
    started = time.monotonic()
    try:
        answer = client.call(partner, "ITI-38", ITI38_ACTION, stored_query_to_xml(query),
                             expect_action=ITI38_REPLY)
        result = read_query_response(answer.body, home_community_id=partner.home_community_id)
        answer.close()
    except OutboundError as exc:
        elapsed = (time.monotonic() - started) * 1000
        click.echo(f"FAILED after {elapsed:.0f} ms ({exc.kind}): {exc.reason}")
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a diagnostic command reports, it does not trace
        click.echo(f"FAILED: the answer could not be read ({type(exc).__name__}: {exc})")
        sys.exit(1)
    finally:
        transport.close()
    elapsed = (time.monotonic() - started) * 1000
    click.echo(f"answered in {elapsed:.0f} ms: {result.status.rsplit(':', 1)[-1]}, "
               f"{len(result.objects)} object(s)")
    for e in result.errors:
        click.echo(f"  {e.severity.rsplit(':', 1)[-1]} {e.code}: {e.context}")
