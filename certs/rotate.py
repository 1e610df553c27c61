"""``ihe-gateway certs rotate``: a new key and certificate, an overlap, then retirement.

The new key and certificate replace the files in place (the server reloads
them); the old pair is kept as ``<name>-previous.pem`` / ``-previous-key.pem``
for whoever still presents it. Where the old certificate is pinned in the
trust store, the new one is pinned beside it until the overlap ends; ``rotate
--finish`` then removes the old pin (``--now``: without waiting).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from cryptography.x509.oid import NameOID

from certs import authority, changes, inventory, keys
from certs.cli import CONFIG, PASS_ENV, _config, _finish, _layout, _refused


def _identity(layout: changes.Layout, role: str) -> tuple[Path, Path]:
    if role == "gateway":
        return layout.certificate, layout.private_key
    cert, key = layout.directory / f"{role}.pem", layout.directory / f"{role}-key.pem"
    if not cert.exists() or not key.exists():
        raise click.ClickException(f"no {cert.name} and {key.name} in {layout.directory}")
    return cert, key


def _names(cert) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in san]


@click.command("rotate")
@CONFIG
@click.option("--role", default="gateway", show_default=True,
              help="Whose pair: gateway, or NAME for NAME.pem/NAME-key.pem beside the trust store.")
@click.option("--overlap-days", type=click.FloatRange(min=0), default=7.0, show_default=True)
@click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ca-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--finish", is_flag=True, help="Retire old certificates whose overlap is over.")
@click.option("--now", "immediately", is_flag=True, help="With --finish: end every overlap now.")
@PASS_ENV
def rotate(config_path, role, overlap_days, ca_cert, ca_key, finish, immediately,
           passphrase_env) -> None:
    """A new key and certificate; both accepted during --overlap-days, then the old retired."""
    config = _config(config_path)
    layout = _layout(config)
    if finish:
        try:
            description = changes.retire(layout, immediately=immediately)
        except changes.ChangeRefused as exc:
            raise _refused(exc) from None
        if not description:
            click.echo("nothing to retire yet")
            return
        if not inventory.Manifest.load(layout.directory).retiring:
            for prev in layout.directory.glob("*-previous*.pem"):
                prev.unlink()  # copies are in the backup taken by retire
        _finish(config, description, f"file://{layout.trust_store}")
        return
    ca_cert = ca_cert or layout.directory / "ca.pem"
    ca_key = ca_key or layout.directory / "ca-key.pem"
    if not ca_key.exists():
        raise click.ClickException(
            "no CA key to issue with: run `ihe-gateway certs csr`, have the CSR signed by "
            "your exchange, then `ihe-gateway certs install`")
    cert_path, key_path = _identity(layout, role)
    old = inventory.read_certificates(cert_path)[0]
    try:
        source = keys.FileKeySource(ca_key, passphrase_env)
        # ca.pem may also be the trust store: take the certificate that is this key's.
        mine = [c for c in inventory.read_certificates(ca_cert) if keys.matches(c, source)]
    except (keys.KeyError_, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not mine:
        raise click.ClickException(f"no certificate in {ca_cert} matches {ca_key}")
    ca = authority.Credential(mine[0], source.private_key())
    cn = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    new = authority.issue(ca, str(cn[0].value) if cn else role, extra_names=_names(old))
    changes.backup(layout, cert_path, key_path)
    prev_cert = cert_path.with_name(cert_path.stem + "-previous.pem")
    prev_key = key_path.with_name(cert_path.stem + "-previous-key.pem")
    shutil.copy2(cert_path, prev_cert)
    shutil.copy2(key_path, prev_key)
    description = changes.start_overlap(layout, old, new.certificate, overlap_days, role)
    keys.save_key(key_path, new.private_key, overwrite=True)
    changes.write_atomic(cert_path, new.certificate_pem())
    if ca.certificate.subject.rfc4514_string().find(authority.DEV_ORGANIZATION) >= 0:
        click.echo("note: issued by a DEVELOPMENT CA - NOT FOR PRODUCTION")
    click.echo(f"old pair kept as {prev_cert.name}, {prev_key.name} until --finish")
    _finish(config, description, f"file://{cert_path}")
