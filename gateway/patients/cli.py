"""``ihe-gateway patients add|show|mllp``: put a patient in the index, see a person's
identifiers, run the HL7 v2 PIX listener.

Identifiers are written in CX form, ``ID^^^&OID&ISO`` (quote them in a shell).
Every command brings the database to the current schema first, as the server does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.audit.hook import Auditor
from gateway.config import Config, ConfigError, load_config
from gateway.patients.index import SqlPatientIndex
from gateway.store.db import Database
from gateway.store.migrate import ensure_current
from profiles.hl7v3.datatypes import II, PN, TS, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord, UnknownDomain, parse_cx

_config_option = click.option(
    "--config", "config_path", required=True,
    type=click.Path(dir_okay=False, path_type=Path), help="Path to gateway.toml.",
)


def _load(config_path: Path) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)


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
@_config_option
@click.option("--given", multiple=True, help="Given name (repeat for middle names).")
@click.option("--family", default=None, help="Family name.")
@click.option("--birth", type=_Birth(), default=None, help="Birth date, YYYYMMDD.")
@click.option("--gender", "sex", type=click.Choice(["M", "F", "UN"]), default=None)
@click.option("--link", "links", type=CX, multiple=True,
              help="Another identifier of the same person (repeatable): links the records.")
def add(patient_id: II, config_path: Path, given: tuple[str, ...], family: str | None,
        birth: TS | None, sex: str | None, links: tuple[II, ...]) -> None:
    """Add (or update) PATIENT_ID with the demographics given."""
    config = _load(config_path)
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
@_config_option
def show(patient_id: II, config_path: Path) -> None:
    """Print PATIENT_ID's demographics, its identifiers in other domains, its correlations."""
    index, database = _index(_load(config_path))
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
        correlations = index.correlations(record.id)
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
        click.echo(f"partner:  {c.theirs} at {c.home_community_id}")


@patients_group.command("mllp")
@_config_option
@click.option("--host", default=None, help="Address to listen on (default: server.host).")
@click.option("--port", default=2575, show_default=True, type=click.IntRange(0, 65535))
@click.option("--plain", is_flag=True, help="No TLS, for development only.")
def mllp(config_path: Path, host: str | None, port: int, plain: bool) -> None:
    """Run the PIX Manager's HL7 v2 MLLP listener (ITI-8, ITI-9) until interrupted."""
    import asyncio

    from gateway.mllp import MllpServer, pix_manager, server_tls_context

    config = _load(config_path)
    if config.tls is None and not plain:
        raise click.ClickException("no [tls] in the configuration: add it, or pass --plain")
    tls = None if plain or config.tls is None else server_tls_context(
        config.tls.certificate, config.tls.private_key, config.tls.trust_store)
    index, database = _index(config, connections=config.server.threads)
    listen = host or config.server.host
    auditor = Auditor.from_config(config, database)
    manager = pix_manager(index, auditor, endpoint=f"mllp://{listen}:{port}")
    server = MllpServer(manager, host=listen, port=port, tls=tls)
    click.echo(f"MLLP on {server.host}:{port} ({'plain' if tls is None else 'mutual TLS'})")
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        pass
    finally:
        database.dispose()
