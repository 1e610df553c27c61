"""``ihe-gateway patients add|show|discover|mllp``: put a patient in the index, see a
person's identifiers, find the person in partner communities (XCPD), run the HL7 v2 PIX
listener.

Identifiers are written in CX form, ``ID^^^&OID&ISO`` (quote them in a shell).
Every command brings the database to the current schema first, as the server does.
"""

from __future__ import annotations

from pathlib import Path

import click

from gateway.audit.hook import Auditor
from gateway.clicommon import config_option, load_config_or_exit
from gateway.config import Config
from gateway.patients.index import SqlPatientIndex
from gateway.store.db import Database
from gateway.store.migrate import ensure_current
from profiles.hl7v3.datatypes import II, PN, TS, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord, UnknownDomain, parse_cx


def _index(config: Config, *, connections: int = 1) -> tuple[SqlPatientIndex, Database]:
    config.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    ensure_current(config.database_url)
    database = Database(config.database_url, pool_size=connections, max_overflow=0)
    return SqlPatientIndex(database), database


class _Cx(click.ParamType):
    name = "ID^^^&OID&ISO"

    def convert(self, value, param, ctx) -> II:
        if isinstance(value, II):
            return value
        try:
            return parse_cx(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Birth(click.ParamType):
    name = "YYYYMMDD"

    def convert(self, value, param, ctx) -> TS:
        ts = TS.parse(value)
        if not ts.is_valid or len(ts.value or "") < 4:
            self.fail("expected an HL7 date such as 19630805", param, ctx)
        return ts


CX = _Cx()


@click.group("patients")
def patients_group() -> None:
    """The patient index: add a patient, show a person's identifiers across domains."""


@patients_group.command("add")
@click.argument("patient_id", type=CX)
@config_option
@click.option("--given", multiple=True, help="Given name (repeat for middle names).")
@click.option("--family", default=None, help="Family name.")
@click.option("--birth", type=_Birth(), default=None, help="Birth date, YYYYMMDD.")
@click.option("--gender", "sex", type=click.Choice(["M", "F", "UN"]), default=None)
@click.option("--link", "links", type=CX, multiple=True,
              help="Another identifier of the same person (repeatable): links the records.")
def add(patient_id: II, config_path: Path, given: tuple[str, ...], family: str | None,
        birth: TS | None, sex: str | None, links: tuple[II, ...]) -> None:
    """Add (or update) PATIENT_ID with the demographics given."""
    config = load_config_or_exit(config_path)
    names = (PN.of(given, family or ()),) if given or family else ()
    person = Person(names=names, gender=gender(sex) if sex else None, birth_time=birth,
                    other_ids=tuple(OtherId(ii, ii.root) for ii in links))
    index, database = _index(config)
    try:
        created = index.add(PatientRecord(patient_id, person))
    except UnknownDomain as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    click.echo(f"{'added' if created else 'updated'} {patient_id}")


def _name(pn: PN) -> str:
    return pn.text or " ".join(p.value for p in pn.parts)


@patients_group.command("show")
@click.argument("patient_id", type=CX)
@config_option
def show(patient_id: II, config_path: Path) -> None:
    """Print PATIENT_ID's demographics, its identifiers in other domains (local ids and
    cross-references), partner communities' ids for it (correlations, with their
    homeCommunityIds) and the ids merged into it."""
    index, database = _index(load_config_or_exit(config_path))
    try:
        record = index.get(patient_id)
        if record is None:
            survivor = index.merged_into(patient_id)
            if survivor is None:
                raise click.ClickException(f"no patient {patient_id}")
            click.echo(f"{patient_id} was merged into {survivor}")
            record = index.get(survivor)
            assert record is not None
        xrefs = index.cross_references(record.id)
        correlations = [c for ii in (record.id, *xrefs) for c in index.correlations(ii)]
        merges = [m for ii in (record.id, *xrefs) for m in index.merge_history(ii)]
    finally:
        database.dispose()
    person = record.person
    click.echo(f"patient:  {record.id}")
    for pn in person.names:
        click.echo(f"name:     {_name(pn)}")
    if person.birth_time:
        click.echo(f"birth:    {person.birth_time.value}")
    if person.gender:
        click.echo(f"gender:   {person.gender.code}")
    for ad in person.addresses:
        click.echo(f"address:  {', '.join(p.value for p in ad.parts)}")
    for tel in person.telecoms:
        click.echo(f"telecom:  {tel.value}")
    for ii in xrefs:
        click.echo(f"also:     {ii}")
    for c in correlations:
        click.echo(f"partner:  {c.theirs} at {c.home_community_id} (for {c.patient})")
    for retired, source, when, moved in merges:
        click.echo(f"merged:   {retired} on {when} by {source or 'unknown'}"
                   f" ({moved} correlation(s) moved)")


@patients_group.command("discover")
@config_option
@click.option("--given", multiple=True, help="Given name (repeat for middle names).")
@click.option("--family", required=True, help="Family name.")
@click.option("--birth", type=_Birth(), required=True, help="Birth date, YYYYMMDD.")
@click.option("--gender", "sex", type=click.Choice(["M", "F", "UN"]), default=None)
@click.option("--patient", "patient_id", type=CX, default=None,
              help="Our id for the person (default: the patient our index matches).")
@click.option("--community", "communities", multiple=True,
              help="Ask only this homeCommunityId (repeatable; default: every partner).")
def discover(config_path: Path, given: tuple[str, ...], family: str, birth: TS,
             sex: str | None, patient_id: II | None, communities: tuple[str, ...]) -> None:
    """Find a person in partner communities (ITI-55 to each, in parallel): each match
    is verified against our record before it is stored as a correlation."""
    from gateway.xcpd.wiring import matching_of, run_discovery, standalone
    from profiles.xcpd.discovery import DiscoveryRequest
    from profiles.xcpd.models import QueryParameters

    config = load_config_or_exit(config_path)
    params = QueryParameters(names=(PN.of(given, family),), birth_time=birth,
                             gender=gender(sex) if sex else None,
                             ids=(patient_id,) if patient_id else ())
    index, database = _index(config, connections=2)
    try:
        with standalone(config, database, index) as gateway:
            found = run_discovery(
                DiscoveryRequest(params, patient_id.root if patient_id else None,
                                 tuple(communities) or None),
                gateway=gateway, index=index, home=config.community.home_community_id,
                auditor=Auditor.from_config(config, database), config=matching_of(config),
                fallback_id="patients-discover")
    finally:
        database.dispose()
    if not found.communities:
        raise click.ClickException("no partner community has an ITI-55 endpoint")
    _discovery_table(found)


def _discovery_table(found) -> None:
    """One row per match (or per community without one): where, their id, our verdict."""
    rows = [("community", "their id", "score", "verified", "time", "error")]
    for o in found.communities:
        when = f"{o.elapsed:.2f}s"
        for c in o.checked:
            verdict = "yes" if c.trusted else f"no: {c.reason}"
            rows.append((o.home_community_id, str(c.match.patient.id),
                         f"{c.score.percent}%", verdict, when, ""))
        if not o.checked:
            rows.append((o.home_community_id, "-", "-", o.status.value, when, o.error or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False))
                   + (f"  {row[-1]}" if row[-1] else ""))
    stored = len(found.trusted)
    if found.patient is None:
        click.echo("no patient of ours matches: nothing stored")
    else:
        click.echo(f"{stored} correlation(s) stored for {found.patient}")


@patients_group.command("mllp")
@config_option
@click.option("--host", default=None, help="Address to listen on (default: [mllp] host, "
              "else server.host).")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port (default: [mllp] port).")
@click.option("--plain", is_flag=True, help="No TLS, for development only.")
def mllp(config_path: Path, host: str | None, port: int | None, plain: bool) -> None:
    """Run the PIX Manager's HL7 v2 MLLP listener (ITI-8, ITI-9) until interrupted, on its
    own (``serve`` runs it too when ``[mllp] enabled``); timeouts and size from ``[mllp]``."""
    import asyncio

    from gateway.mllp import MllpServer, pix_manager, server_tls_context

    config = load_config_or_exit(config_path)
    if config.tls is None and not plain:
        raise click.ClickException("no [tls] in the configuration: add it, or pass --plain")
    tls = None if plain or config.tls is None else server_tls_context(
        config.tls.certificate, config.tls.private_key, config.tls.trust_store)
    index, database = _index(config, connections=config.server.threads)
    m = config.mllp
    listen = host or m.host or config.server.host
    port = m.port if port is None else port
    auditor = Auditor.from_config(config, database)
    manager = pix_manager(index, auditor, endpoint=f"mllp://{listen}:{port}")
    server = MllpServer(manager, host=listen, port=port, tls=tls,
                        max_message_bytes=m.max_message_bytes,
                        idle_timeout=m.idle_timeout_seconds, read_timeout=m.read_timeout_seconds)
    click.echo(f"MLLP on {server.host}:{port} ({'plain' if tls is None else 'mutual TLS'})")
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        pass
    finally:
        database.dispose()
