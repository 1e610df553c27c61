"""``ihe-gateway init``: a new community folder that serves as soon as it is written.

The folder holds ``gateway.toml``, a development PKI under ``certs/`` and a
migrated database under ``data/``. The PKI comes from a CA made on the spot
(``certs.authority``) that no partner trusts: it lets a new user run mutual
TLS locally, and is replaced by exchange-issued certificates before going live.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from certs import authority
from gateway.config import ROLE_NAMES, load_config, normalise_oid
from profiles.oid import is_oid

CONFIG_FILE = "gateway.toml"
# The files init writes, relative to the community folder; none may exist beforehand.
PKI_FILES = {
    "ca": ("certs/ca.pem", "certs/ca-key.pem"),
    "gateway": ("certs/gateway.pem", "certs/gateway-key.pem"),
    "client": ("certs/client.pem", "certs/client-key.pem"),
}
TRUST_FILE = "certs/trust.pem"  # starts as our dev CA; partners' CAs are added to it
DATABASE_FILE = "data/gateway.db"


class CommunityExists(Exception):
    """The folder already holds (part of) a community; init never overwrites one."""


def new_community_id() -> str:
    """A fresh OID under 2.25, the arc of OIDs made from a UUID (ITU-T X.667).

    Unique without registering anything, so fine for development; an exchange
    assigns the production homeCommunityId.
    """
    return f"2.25.{uuid.uuid4().int}"


def init_community(
    directory: Path, *, community_id: str | None = None, name: str | None = None, port: int = 8443
) -> str:
    """Write a community into ``directory`` and return a summary for the user.

    Raises CommunityExists when any file it would write is already there, and
    ValueError for a bad OID, name or port. On a failure half way it removes
    what it wrote, so running it again starts clean.
    """
    directory = Path(directory).absolute()
    oid = normalise_oid(community_id) if community_id else new_community_id()
    if not is_oid(oid, allow_urn_prefix=True):
        raise ValueError(f"--community-id {community_id!r} is not an OID (e.g. 2.16.840.1.1)")
    name = name if name is not None else directory.name
    if not name.strip():
        raise ValueError("the community name must not be empty")
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a folder")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not between 1 and 65535")

    targets = [CONFIG_FILE, DATABASE_FILE, TRUST_FILE,
               *(f for pair in PKI_FILES.values() for f in pair)]
    existing = [t for t in targets if (directory / t).exists()]
    if existing:
        raise CommunityExists(
            f"{directory} already holds a community ({', '.join(existing)}); "
            "not overwriting it. Choose another folder or remove it first."
        )

    written: list[Path] = []
    folders = (directory, directory / "certs", directory / "data")
    created_dirs = [d for d in folders if not d.exists()]
    try:
        for d in created_dirs:
            # The data folder will hold documents and patient data: owner only.
            d.mkdir(parents=True, mode=0o700 if d == directory / "data" else 0o755)
        ca = _write_pki(directory, name, written)
        config_path = directory / CONFIG_FILE
        config_path.write_text(render_config(oid, name, port), encoding="utf-8")
        written.append(config_path)
        config = load_config(config_path)  # the file must load; this also applies the env
        _migrate(config.database_url)
        if config.database_url.startswith("sqlite"):
            written.append(directory / DATABASE_FILE)
    except BaseException:
        _remove(written, created_dirs, directory)
        raise
    return _summary(directory, config_path, oid, name, port, ca, config.database_url)


def _write_pki(directory: Path, name: str, written: list[Path]) -> authority.Credential:
    ca = authority.create_authority(f"{name} development CA")
    gateway = authority.issue(ca, "localhost")  # CN = the host name partners connect to
    client = authority.issue(ca, f"{name} local client")
    for key, credential in (("ca", ca), ("gateway", gateway), ("client", client)):
        cert_file, key_file = (directory / f for f in PKI_FILES[key])
        written += [key_file, cert_file]
        credential.save(cert_file, key_file)
    # A trust store of its own, so trusting a partner (``certs trust``, ``partners add
    # --ca``) never changes the CA file we hand to partners.
    trust = directory / TRUST_FILE
    written.append(trust)
    trust.write_bytes((directory / PKI_FILES["ca"][0]).read_bytes())
    return ca


def _migrate(url: str) -> None:
    from gateway.store.migrate import ensure_current

    ensure_current(url)


def _remove(written: list[Path], created_dirs: list[Path], directory: Path) -> None:
    for p in written:
        for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
            f.unlink(missing_ok=True)
    for d in reversed(created_dirs):
        with contextlib.suppress(OSError):  # not empty: something else is in there
            d.rmdir()


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are all valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)


def render_config(oid: str, name: str, port: int) -> str:
    """The gateway.toml ``init`` writes: the settings it chose, and the ones to change next."""
    roles = "\n".join(f"{role} = true" for role in ROLE_NAMES)
    written = datetime.now(UTC).strftime("%Y-%m-%d")
    return f"""\
# Written by `ihe-gateway init` on {written}. Check it with
#   ihe-gateway check-config --config gateway.toml
# The certificates under certs/ come from a DEVELOPMENT CA that no partner trusts:
# replace them with your exchange's certificates before going live.

[community]
home_community_id = {_toml_string(oid)}
name = {_toml_string(name)}

[server]
# Loopback only, so a development gateway is not reachable from the network.
# Use "0.0.0.0" to accept partners on other machines.
host = "127.0.0.1"
port = {port}
workers = 2
threads = 4

[tls]
# Paths are relative to this file.
certificate = "certs/gateway.pem"
private_key = "certs/gateway-key.pem"
# Client certificates must chain to a CA in this file (mutual TLS); it starts with
# the development CA, and `certs trust` / `partners add --ca` add partners' CAs.
trust_store = "certs/trust.pem"

[storage]
data_dir = "data"

# [database]
# Default: SQLite at data/gateway.db. The environment variable GATEWAY_DATABASE_URL
# overrides this setting.
# url = "postgresql://gateway@db.example.org/gateway"

[roles]
{roles}

# [limits]
# max_message_bytes = 52428800
# max_attachment_bytes = 2147483648
# request_timeout_seconds = 120
# outbound_timeout_seconds = 30

# [mllp]
# The PIX Manager's HL7 v2 listener (ITI-8, ITI-9), run by `serve`; mutual TLS with [tls].
# enabled = true
# port = 2575

# [matching]
# XCPD demographic matching: a match needs `threshold`, and a lead of `margin` over the next.
# threshold = 10.0
# margin = 2.0

# [xcpd]
# An ITI-18 for a patient no partner is correlated with first runs patient discovery.
# discovery = true
# deadline_seconds = 30
"""


def _summary(
    directory: Path,
    config_path: Path,
    oid: str,
    name: str,
    port: int,
    ca: authority.Credential,
    database_url: str,
) -> str:
    from sqlalchemy.engine import make_url

    certs = directory / "certs"
    database = make_url(database_url).render_as_string(hide_password=True)
    expires = ca.certificate.not_valid_after_utc.date().isoformat()
    return f"""\
Created community {name!r} in {directory}
  home community id  urn:oid:{oid}
  configuration      {config_path}
  development CA     {certs / "ca.pem"} (give it to partners; trust store: {certs / "trust.pem"})
                     NOT FOR PRODUCTION; expires {expires}
  gateway cert/key   {certs / "gateway.pem"}, {certs / "gateway-key.pem"}
  client cert/key    {certs / "client.pem"}, {certs / "client-key.pem"} (for curl and tests)
  database           {database} (migrated)

Serve it:
  ihe-gateway serve --config {config_path}
Then, from another terminal:
  curl --cert {certs / "client.pem"} --key {certs / "client-key.pem"} \\
       --cacert {certs / "ca.pem"} https://localhost:{port}/healthz"""
