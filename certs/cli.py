"""``ihe-gateway certs``: keys, trust store, partner certificates, expiry and rotation.

Every change is backed up first (``backup/<timestamp>/`` beside the trust store),
audited as an ATNA Security Configuration change, and signalled to a running
server (SIGHUP through its pid file), which then serves with the new files
without dropping a request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from certs import authority, changes, inventory, keys, reload
from certs.verify import ChainError

DEV_BANNER = "DEVELOPMENT PKI - NOT FOR PRODUCTION: no partner trusts it."
CONFIG = click.option("--config", "config_path", required=True,
                      type=click.Path(dir_okay=False, exists=True, path_type=Path),
                      help="Path to gateway.toml.")
PASS_ENV = click.option("--passphrase-env", default=None, metavar="VAR",
                        help="Environment variable holding the key (or PKCS#12) passphrase.")
FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def _config(path: Path):
    from gateway.clicommon import load_config_or_exit

    return load_config_or_exit(path)


def _layout(config) -> changes.Layout:
    try:
        return changes.Layout.of(config)
    except changes.ChangeRefused as exc:
        raise click.ClickException(str(exc)) from None


def _read(path: Path, passphrase_env: str | None = None):
    """(key or None, certificates) from PEM, DER or PKCS#12."""
    try:
        return None, inventory.read_certificates(path)
    except ValueError:
        pass
    try:
        return keys.load_pkcs12(path, keys.passphrase_from_env(passphrase_env))
    except keys.KeyError_ as exc:
        raise click.ClickException(
            f"{path}: neither a certificate nor a PKCS#12 file ({exc})"
        ) from None


def _finish(config, description: str, resource: str) -> None:
    """Audit the change and tell a running server to reload."""
    from gateway.audit.hook import Auditor
    from gateway.store.db import Database
    from profiles.atna.nodes import security_configuration_change

    click.echo(description)
    database = Database(config.database_url, pool_size=1)
    try:
        auditor = Auditor.from_config(config, database)
        message = security_configuration_change(
            auditor.occasion(), reporter=auditor.node, resource=resource,
            description=description)
        if not auditor.node_event(message):
            click.echo("warning: the change could not be audited (see the log)", err=True)
    finally:
        database.dispose()
    pid = reload.signal_reload(config.data_dir)
    if pid is None:
        click.echo("no running server found: the change applies when it next starts")
    else:
        click.echo(f"signalled the running server (pid {pid}) to reload without a restart")


def _refused(exc: Exception) -> click.ClickException:
    return click.ClickException(f"refused: {exc}")


@click.group("certs")
def certs_group() -> None:
    """Certificates: keys, trust store, partner certificates, expiry and rotation."""


@certs_group.command("dev-ca")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="IHE Gateway development CA", show_default=True)
@PASS_ENV
def dev_ca(directory: Path, name: str, passphrase_env: str | None) -> None:
    """A development CA in DIRECTORY (ca.pem, ca-key.pem). NOT FOR PRODUCTION."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = authority.create_authority(name)
    try:
        keys.save_key(directory / "ca-key.pem", ca.private_key, passphrase_env=passphrase_env)
        changes.write_atomic(directory / "ca.pem", ca.certificate_pem())
    except (FileExistsError, keys.KeyError_) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{DEV_BANNER}\nwrote {directory / 'ca.pem'} and {directory / 'ca-key.pem'}")


@certs_group.command("issue")
@click.argument("common_name")
@click.option("--ca-cert", type=FILE, required=True)
@click.option("--ca-key", type=FILE, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prefix: writes PREFIX.pem and PREFIX-key.pem.")
@click.option("--name", "names", multiple=True, help="Extra host name or IP (SAN).")
@click.option("--days", type=float, default=authority.LEAF_DAYS, show_default=True)
@PASS_ENV
def issue(common_name, ca_cert, ca_key, out, names, days, passphrase_env) -> None:
    """A leaf from a development CA, for tests and the demo. NOT FOR PRODUCTION."""
    try:
        ca_private = keys.FileKeySource(ca_key, passphrase_env).private_key()
    except keys.KeyError_ as exc:
        raise click.ClickException(str(exc)) from None
    ca = authority.Credential(inventory.read_certificates(ca_cert)[0], ca_private)
    leaf = authority.issue(ca, common_name, extra_names=names, days=days)
    cert_path, key_path = Path(f"{out}.pem"), Path(f"{out}-key.pem")
    try:
        leaf.save(cert_path, key_path)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists; not overwriting it") from None
    click.echo(f"{DEV_BANNER}\nwrote {cert_path} and {key_path}")


@certs_group.command("csr")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Prefix: writes PREFIX-key.pem (0600) and PREFIX.csr.")
@click.option("--cn", "common_name", required=True, help="Host name partners connect to.")
@click.option("--o", "organization", default=None)
@click.option("--ou", "unit", default=None)
@click.option("--l", "locality", default=None)
@click.option("--st", "state", default=None)
@click.option("--c", "country", default=None, help="Two-letter country code.")
@click.option("--email", default=None)
@click.option("--name", "names", multiple=True, help="subjectAltName (host or IP); CN is added.")
@click.option("--key-type", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True)
@PASS_ENV
def csr(out, common_name, organization, unit, locality, state, country, email, names,
        key_type, passphrase_env) -> None:
    """A new key and a CSR with the subject fields your network asks for."""
    from certs.csr import build_csr

    key = keys.new_private_key(key_type)
    try:
        request = build_csr(key, common_name=common_name, organization=organization,
                            unit=unit, locality=locality, state=state, country=country,
                            email=email, names=names)
        keys.save_key(Path(f"{out}-key.pem"), key, passphrase_env=passphrase_env)
        changes.write_atomic(Path(f"{out}.csr"), request)
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}-key.pem (keep it here) and {out}.csr (send it to your CA)\n"
               f"then: ihe-gateway certs install SIGNED.pem --key {out}-key.pem --config ...")


@certs_group.command("install")
@click.argument("certificate", type=FILE)
@click.option("--key", "key_path", type=FILE, required=True, help="The CSR's private key.")
@click.option("--chain", type=FILE, default=None, help="Intermediates (and root) PEM.")
@CONFIG
@PASS_ENV
def install(certificate, key_path, chain, config_path, passphrase_env) -> None:
    """Install a signed certificate and its chain as the gateway's own."""
    config = _config(config_path)
    layout = _layout(config)
    source = keys.FileKeySource(key_path, passphrase_env)
    _, certs = _read(certificate, passphrase_env)
    extra = inventory.read_certificates(chain) if chain else []
    full = certs + [c for c in extra if all(c != x for x in certs)]
    roots = [c for c in full[1:] if c.issuer == c.subject]
    anchors = inventory.read_certificates(layout.trust_store) + roots
    try:
        description = changes.install(layout.certificate, keys.public_der(source.public_key()),
                                      full, anchors, layout)
        keys.save_key(layout.private_key, source.private_key(), overwrite=True)
    except (changes.ChangeRefused, ChainError, keys.KeyError_) as exc:
        raise _refused(exc) from None
    _finish(config, description, f"file://{layout.certificate}")


@certs_group.command("trust")
@click.argument("file", type=FILE)
@click.option("--partner", default="", help="homeCommunityId (and name) it belongs to.")
@click.option("--name", default="", help="The partner's name, for listings.")
@CONFIG
@PASS_ENV
def trust(file, partner, name, config_path, passphrase_env) -> None:
    """Trust a CA or pin a partner certificate (PEM, DER or PKCS#12)."""
    config = _config(config_path)
    layout = _layout(config)
    _, certs = _read(file, passphrase_env)
    who = f"{name} ({partner})" if name and partner else partner or name
    try:
        description = changes.trust(layout, certs, partner=who)
    except changes.ChangeRefused as exc:
        raise _refused(exc) from None
    _finish(config, description, f"file://{layout.trust_store}")


@certs_group.command("untrust")
@click.argument("target")
@CONFIG
def untrust(target, config_path) -> None:
    """Remove a certificate (a file holding it, or its SHA-256 prefix) from the trust store."""
    config = _config(config_path)
    layout = _layout(config)
    selector = inventory.read_certificates(Path(target)) if Path(target).is_file() else target
    try:
        description = changes.untrust(layout, selector)
    except changes.ChangeRefused as exc:
        raise _refused(exc) from None
    _finish(config, description, f"file://{layout.trust_store}")


@certs_group.command("list")
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="One JSON object per certificate.")
def list_(config_path, as_json) -> None:
    """Every certificate in use, worst status first."""
    entries = inventory.collect(_config(config_path))
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
    else:
        click.echo(inventory.render_table(entries))


@certs_group.command("check")
@CONFIG
@click.option("--crl", "crl_files", multiple=True, type=FILE, help="CRL file (PEM or DER).")
@click.option("--ocsp-url", default=None, help="OCSP responder to ask when no CRL knows.")
def check(config_path, crl_files, ocsp_url) -> None:
    """Exit 1 when any certificate is expired, not yet valid, within 30 days or revoked."""
    from certs import revocation

    entries = inventory.collect(_config(config_path))
    crls = [revocation.load_crl(f) for f in crl_files]
    known = [e.cert for e in entries if e.cert is not None]
    bad = []
    for e in entries:
        status = e.status()
        if e.cert is not None and (crls or ocsp_url):
            for issuer in (c for c in known if c.subject == e.cert.issuer and c != e.cert):
                if revocation.revocation_status(
                        e.cert, issuer, crls, ocsp_url=ocsp_url) == revocation.REVOKED:
                    status = "revoked"
        if inventory.needs_attention(status):
            bad.append((status, e))
    for status, e in bad:
        click.echo(f"{status.upper()}: {e.role} {e.file.name} "
                   f"{e.cert.subject.rfc4514_string() if e.cert else ''} "
                   f"({e.user or 'unbound'})", err=True)
    if bad:
        sys.exit(1)
    click.echo(f"ok: {len(entries)} certificate(s), none expired, revoked or within 30 days")


@certs_group.command("show")
@click.argument("file", type=FILE)
@PASS_ENV
def show(file, passphrase_env) -> None:
    """What a certificate, chain, CSR, key or PKCS#12 file holds."""
    from certs.show import describe_file

    try:
        click.echo(describe_file(file, keys.passphrase_from_env(passphrase_env)))
    except (ValueError, keys.KeyError_) as exc:
        raise click.ClickException(f"{file}: {exc}") from None


def register_rotate() -> None:
    from certs.rotate import rotate

    certs_group.add_command(rotate)


register_rotate()
