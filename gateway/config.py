"""Configuration: ``gateway.toml`` loaded into frozen dataclasses.

Every problem is collected (with its dotted key and the reason, by
``gateway.config_reader.TableReader``) before anything is raised, so
``ihe-gateway check-config`` can print them all at once. Relative paths are
resolved against the folder holding the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config_reader import (
    TableReader,
    must_be_oid,
    must_be_port,
    must_be_positive,
    must_be_strings,
    must_not_be_negative,
)
from gateway.partners.model import Partner, PartnerError, partner_from_table
from gateway.settings import Mllp, matching_from, mllp_from
from profiles.xcpd.matching import MatchConfig

ROLE_NAMES = (
    "registry",
    "repository",
    "responding_gateway",
    "initiating_gateway",
    "xcpd",
    "pix",
    "xdr",
)
DATABASE_ENV = "GATEWAY_DATABASE_URL"


class ConfigError(Exception):
    """Configuration is unusable; ``problems`` lists every ``key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def normalise_oid(value: str) -> str:
    """Return the bare OID of ``urn:oid:1.2.3`` or ``1.2.3``."""
    return value.removeprefix("urn:oid:")


@dataclass(frozen=True)
class Community:
    oid: str
    name: str

    @property
    def home_community_id(self) -> str:
        return f"urn:oid:{self.oid}"


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 2
    threads: int = 4


@dataclass(frozen=True)
class Tls:
    certificate: Path
    private_key: Path
    trust_store: Path


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 50 * 1024 * 1024
    max_attachment_bytes: int = 2 * 1024 * 1024 * 1024
    request_timeout_seconds: float = 120.0
    outbound_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Xua:
    """The ``[xua]`` table; the defaults are the production ones."""

    required_on_partner_endpoints: bool = True  # false: development only, logged at start
    clock_skew_seconds: float = 300.0
    audience: tuple[str, ...] = ()
    require_registered_partner: bool = False
    timestamp_max_age_seconds: float = 300.0
    max_assertion_age_seconds: float = 3600.0
    role_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditDestination:
    transport: str  # "tls" | "udp"
    host: str
    port: int


@dataclass(frozen=True)
class Registry:
    """[registry]: how many objects one stored query may return (XDSTooManyResults)."""

    max_results: int = 1000


@dataclass(frozen=True)
class Repository:
    """[repository]: its OID (default: derived from the community) and, when the
    registry is another system, its ITI-42 endpoint."""

    unique_id: str | None = None
    registry_url: str | None = None


@dataclass(frozen=True)
class Xdr:
    """[xdr]: a folder XDR submissions are handed off to instead of being registered."""

    handoff_dir: Path | None = None


@dataclass(frozen=True)
class Xcpd:
    """[xcpd]: patient discovery as initiator. ``discovery``: an ITI-18 for a patient no
    partner is correlated with first runs ITI-55 to every partner (gateway.xcpd.wiring)."""

    discovery: bool = True
    deadline_seconds: float = 30.0


@dataclass(frozen=True)
class Config:
    community: Community
    server: Server
    tls: Tls | None
    database_url: str
    data_dir: Path
    roles: frozenset[str]
    limits: Limits = field(default_factory=Limits)
    partners: tuple[Partner, ...] = ()
    audit: tuple[AuditDestination, ...] = ()
    diagnostics: bool = False
    xua: Xua = field(default_factory=Xua)
    ccda: Any = None  # gateway.ccda.importer.CcdaSettings from [ccda]; None: the defaults
    registry: Registry = field(default_factory=Registry)
    repository: Repository = field(default_factory=Repository)
    xdr: Xdr = field(default_factory=Xdr)
    xcpd: Xcpd = field(default_factory=Xcpd)
    mllp: Mllp = field(default_factory=Mllp)  # [mllp]: gateway.settings
    matching: MatchConfig = field(default_factory=MatchConfig)  # [matching]: gateway.settings
    source: Path | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles


def load_config(path: str | os.PathLike[str], *, environ: dict[str, str] | None = None) -> Config:
    """Load and validate a gateway.toml; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return config_from_dict(data, base=path.parent.resolve(), environ=environ, source=path)


def config_from_dict(
    data: dict[str, Any],
    *,
    base: Path,
    environ: dict[str, str] | None = None,
    source: Path | None = None,
) -> Config:
    env = os.environ if environ is None else environ
    problems: list[str] = []
    top = TableReader(data, "", problems)

    def resolve(p: str | None) -> Path | None:
        return None if p is None else (base / p).resolve()

    c = top.sub("community")
    oid = c.get("home_community_id", str, check=must_be_oid)
    community = Community(oid=normalise_oid(oid or "0.0"), name=c.get("name", str, ""))
    c.finish()

    s = top.sub("server")
    server = Server(
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, 8443, check=must_be_port),
        workers=s.get("workers", int, 2, check=must_be_positive),
        threads=s.get("threads", int, 4, check=must_be_positive),
    )
    s.finish()

    tls = None
    if "tls" in data:
        t = top.sub("tls")
        files = {k: t.get(k, str) for k in ("certificate", "private_key", "trust_store")}
        t.finish()
        if all(files.values()):
            tls = Tls(**{k: resolve(v) for k, v in files.items()})
            for k, v in files.items():
                if not resolve(v).is_file():
                    problems.append(f"tls.{k}: file not found: {v}")

    st = top.sub("storage")
    data_dir = resolve(st.get("data_dir", str, "data"))
    st.finish()

    d = top.sub("database")
    url = d.get("url", str, "")
    d.finish()
    url = env.get(DATABASE_ENV) or url or f"sqlite:///{data_dir / 'gateway.db'}"
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        problems.append("database.url: only sqlite:// and postgresql:// URLs are supported")

    r = top.sub("roles")
    roles = frozenset(n for n in ROLE_NAMES if r.get(n, bool, True))
    r.finish()

    lim = top.sub("limits")
    defaults = Limits()
    limits = Limits(
        max_message_bytes=lim.get(
            "max_message_bytes", int, defaults.max_message_bytes, check=must_be_positive
        ),
        max_attachment_bytes=lim.get(
            "max_attachment_bytes", int, defaults.max_attachment_bytes, check=must_be_positive
        ),
        request_timeout_seconds=float(
            lim.get("request_timeout_seconds", (int, float), 120.0, check=must_be_positive)
        ),
        outbound_timeout_seconds=float(
            lim.get("outbound_timeout_seconds", (int, float), 30.0, check=must_be_positive)
        ),
    )
    lim.finish()

    partners = []
    top.seen.add("partners")
    raw_partners = data.get("partners", [])
    if not isinstance(raw_partners, list):
        problems.append("partners: must be an array of tables ([[partners]])")
        raw_partners = []
    for i, raw in enumerate(raw_partners):
        if not isinstance(raw, dict):
            problems.append(f"partners[{i}]: must be a table")
            continue
        try:
            partners.append(partner_from_table(raw, base=base))
        except PartnerError as exc:
            problems.append(f"partners[{i}]: {exc}")

    a = top.sub("audit")
    audit = []
    for i, raw in enumerate(a.get("destinations", list, [])):
        ad = TableReader(raw, f"audit.destinations[{i}]", problems)
        audit.append(
            AuditDestination(
                transport=ad.get(
                    "transport",
                    str,
                    "tls",
                    check=lambda v: None if v in ("tls", "udp") else "must be 'tls' or 'udp'",
                ),
                host=ad.get("host", str) or "",
                port=ad.get("port", int, 6514, check=must_be_port),
            )
        )
        ad.finish()
    a.finish()

    x = top.sub("xua")
    xd = Xua()
    xua = Xua(
        required_on_partner_endpoints=x.get(
            "required_on_partner_endpoints", bool, xd.required_on_partner_endpoints
        ),
        clock_skew_seconds=float(
            x.get("clock_skew_seconds", (int, float), xd.clock_skew_seconds,
                  check=must_not_be_negative)
        ),
        audience=tuple(x.get("audience", list, [], check=must_be_strings)),
        require_registered_partner=x.get(
            "require_registered_partner", bool, xd.require_registered_partner
        ),
        timestamp_max_age_seconds=float(
            x.get("timestamp_max_age_seconds", (int, float), 300.0, check=must_be_positive)
        ),
        max_assertion_age_seconds=float(
            x.get("max_assertion_age_seconds", (int, float), 3600.0, check=must_be_positive)
        ),
        role_codes=tuple(x.get("role_codes", list, [], check=must_be_strings)),
    )
    x.finish()

    top.seen.add("ccda")
    ccda = None
    if "ccda" in data:
        from gateway.ccda.importer import settings_from_table  # it imports this module

        if not isinstance(data["ccda"], dict):
            problems.append("ccda: must be a table")
        else:
            try:
                ccda = settings_from_table(data["ccda"])
            except ValueError as exc:
                problems.append(f"ccda: {exc}")

    rg = top.sub("registry")
    registry = Registry(max_results=rg.get("max_results", int, 1000, check=must_be_positive))
    rg.finish()
    rp = top.sub("repository")
    repository = Repository(
        unique_id=rp.get("unique_id", str, None, check=must_be_oid),
        registry_url=rp.get("registry_url", str, None, check=lambda v: None if re.match(
            r"^https?://", v) else "must be an http(s):// URL"),
    )
    rp.finish()
    xr = top.sub("xdr")
    xdr = Xdr(handoff_dir=resolve(xr.get("handoff_dir", str, None)))
    xr.finish()
    xp = top.sub("xcpd")
    xcpd = Xcpd(discovery=xp.get("discovery", bool, True),
                deadline_seconds=float(xp.get("deadline_seconds", (int, float), 30.0,
                                              check=must_be_positive)))
    xp.finish()

    mllp = mllp_from(top.sub("mllp"), have_tls=tls is not None or "tls" in data,
                     server_host=server.host, server_port=server.port)
    matching = matching_from(top.sub("matching"))

    dg = top.sub("diagnostics")
    diagnostics = dg.get("enabled", bool, False)
    dg.finish()

    top.finish()
    if problems:
        raise ConfigError(problems)
    return Config(
        community=community,
        server=server,
        tls=tls,
        database_url=url,
        data_dir=data_dir,
        roles=roles,
        limits=limits,
        partners=tuple(partners),
        audit=tuple(audit),
        diagnostics=diagnostics,
        xua=xua,
        ccda=ccda,
        registry=registry,
        repository=repository,
        xdr=xdr,
        xcpd=xcpd,
        mllp=mllp,
        matching=matching,
        source=source,
    )
