"""SqlPatientIndex on SQLite and PostgreSQL: records, links, merges, candidates, correlations."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.patients.index import SqlPatientIndex
from gateway.patients.models import Patient, PatientKey, PatientMerge
from gateway.store import migrate
from gateway.store.db import Database
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, NamePart, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.demographics import Demographics
from profiles.pix.ports import IndexBusy, PatientRecord, UnknownDomain, key_of

DOD, VA, SSN = "2.16.840.1.113883.3.42.10001.100001.12", "2.16.840.1.113883.4.349", \
    "2.16.840.1.113883.4.1"
EDIPI, ICN = II(DOD, "1234567890"), II(VA, "1012345678V123456")


def person(given="Ann", family="Lee", sex="F", birth="19700101", **more) -> Person:
    return Person(names=(PN.of(given, family),), gender=gender(sex), birth_time=TS(birth),
                  **more)


def keys(ids) -> set[tuple[str, str]]:
    return {key_of(i) for i in ids}


def test_demographics_survive_the_round_trip(index):
    full = Person(
        names=(PN((NamePart("prefix", "Dr."), NamePart("given", "Mary"),
                   NamePart("family", "Smith", "BR")), ("L",)), PN(text="Unknown")),
        gender=gender("F"), birth_time=TS("19771208"), deceased=False,
        addresses=(AD.of(("1 Elm St", "Apt 2"), "Springfield", "IL", "05080", use=("H",)),),
        telecoms=(TEL("tel:+1-217-555-0100", ("HP",)),),
        other_ids=(OtherId(II(SSN, "100-09-1234"), SSN),), mothers_maiden_name=PN.of((), "Doe"),
        birth_place_name="Chicago", multiple_birth_order=2)
    assert index.add(PatientRecord(EDIPI, full)) is True
    assert index.get(EDIPI).person == full
    assert index.get(EDIPI).person.addresses[0].postal_code == "05080"


def test_add_then_update_and_domains(index, db):
    assert not index.known(EDIPI)
    assert index.add(PatientRecord(EDIPI, person())) is True
    assert index.update(PatientRecord(EDIPI, person(family="Lee-Park"))) is False
    assert index.known(EDIPI) and index.get(EDIPI).person.names[0].family == ("Lee-Park",)
    assert index.domains() == {DOD}
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Patient)) == 1
        row = s.scalars(sa.select(Patient)).one()
        assert (row.family, row.given, row.birth_time, row.gender) == (
            "Lee-Park", "Ann", "19700101", "F")


def test_a_closed_domain_list_refuses_new_domains(db):
    closed = SqlPatientIndex(db, accept_new_domains=False)
    with pytest.raises(UnknownDomain):
        closed.add(PatientRecord(EDIPI, person()))
    closed.register_domain(DOD, "DoD EDIPI")
    assert closed.add(PatientRecord(EDIPI, person()))


def test_other_ids_link_records_both_ways_and_unify_groups(index):
    index.add(PatientRecord(EDIPI, person(other_ids=(OtherId(II(SSN, "123-45-6789")),))))
    third = II("1.2.3.4", "L-1")
    index.add(PatientRecord(third, person()))
    assert index.cross_references(EDIPI) == [II(SSN, "123-45-6789")]
    # the VA record names the DoD one; the local record names the VA one: one person
    index.add(PatientRecord(ICN, person(other_ids=(OtherId(EDIPI),))))
    index.add(PatientRecord(third, person(other_ids=(OtherId(ICN),))))
    assert keys(index.cross_references(EDIPI)) == keys([ICN, third, II(SSN, "123-45-6789")])
    assert keys(index.cross_references(third)) == keys([EDIPI, ICN, II(SSN, "123-45-6789")])
    assert index.get(EDIPI).group == index.get(ICN).group == index.get(third).group
    assert SSN in index.domains()


def test_local_ids_translate_a_partner_or_listed_id_to_ours(index):
    """ITI-38's translation: an id we hold, an id one of our records lists, a partner's id."""
    index.add(PatientRecord(EDIPI, person(other_ids=(OtherId(II(SSN, "123-45-6789")),))))
    index.add(PatientRecord(ICN, person(other_ids=(OtherId(EDIPI),))))
    index.add(PatientRecord(II(DOD, "SOMEONE-ELSE"), person(given="Bo")))
    assert keys(index.local_ids(EDIPI)) == keys([ICN, II(SSN, "123-45-6789")])
    assert keys(index.local_ids(II(SSN, "123-45-6789"))) == keys([EDIPI, ICN])
    theirs = II("9.8.7", "THEIRS")
    assert index.local_ids(theirs) == []
    index.record_correlation(EDIPI, theirs, "urn:oid:1.1.1")
    assert keys(index.local_ids(theirs)) == keys([EDIPI, ICN, II(SSN, "123-45-6789")])
    assert index.local_ids(II("4.4.4", "NOBODY")) == []


def test_merge_moves_correlations_and_cross_references(index, db):
    old, new = II(DOD, "OLD"), II(DOD, "NEW")
    index.add(PatientRecord(old, person()))
    index.add(PatientRecord(ICN, person(other_ids=(OtherId(old),))))
    index.record_correlation(old, II("9.8.7", "THEIRS"), "1.1.1")
    result = index.merge(PatientRecord(new, person()), [old, II(DOD, "NEVER-SEEN")],
                         source="ITI-44")
    assert result.merged == (old,) and result.unknown == (II(DOD, "NEVER-SEEN"),)
    assert result.correlations_moved == 1
    assert not index.known(old) and index.get(old) is None
    assert index.merged_into(old) == new and index.merged_into(new) is None
    assert [c.theirs for c in index.correlations(new)] == [II("9.8.7", "THEIRS")]
    assert keys(index.cross_references(new)) == {key_of(ICN)}
    assert key_of(old) not in keys(index.cross_references(ICN))  # retired ids are not listed
    assert keys(r.id for r in index.candidates(Demographics.of_person(person()))) == keys(
        [new, ICN])
    with db.session() as s:
        history = s.scalars(sa.select(PatientMerge).order_by(PatientMerge.id)).all()
        assert [(h.obsolete_extension, h.correlations_moved, h.source) for h in history] == [
            ("OLD", 1, "ITI-44"), ("NEVER-SEEN", 0, "ITI-44")]
        assert not s.scalars(sa.select(PatientKey).where(
            PatientKey.patient_id == history[0].obsolete_id)).all()


def test_a_retired_id_fed_again_starts_afresh(index):
    old, new = II(DOD, "OLD"), II(DOD, "NEW")
    index.add(PatientRecord(old, person()))
    index.merge(PatientRecord(new, person()), [old])
    assert index.add(PatientRecord(old, person(given="Zoe"))) is True
    assert index.known(old) and index.get(old).group != index.get(new).group


def test_candidates_come_from_keys_and_correlations(index):
    index.add(PatientRecord(EDIPI, person("William", "Smith", "M", "19630805")))
    index.add(PatientRecord(II(DOD, "2"), person("Wanda", "Xu", "F", "19991231")))
    for query in (Demographics(names=(PN.of("Bill", "Smith"),)),
                  Demographics(names=(PN.of("Q", "Nobody"),), birth_time="19630508")):
        assert [r.id for r in index.candidates(query)] == [EDIPI]
    assert index.candidates(Demographics(names=(PN.of("Q", "Nobody"),))) == []
    index.record_correlation(EDIPI, II("7.7", "T1"), "1.1.1")
    found = index.candidates(Demographics(ids=(II("7.7", "T1"),)))
    assert [(r.id, r.correlated) for r in found] == [(EDIPI, (II("7.7", "T1"),))]


def test_candidate_limit_counts_groups_best_first(index):
    for i in range(5):
        index.add(PatientRecord(II(DOD, f"P{i}"), person(f"Given{i}", "Same", birth="19800101")))
    index.add(PatientRecord(II(DOD, "BEST"), person("Ann", "Lee", birth="19800101")))
    found = index.candidates(Demographics(names=(PN.of("Ann", "Lee"),), birth_time="19800101"),
                             limit=2)
    assert len(found) == 2 and "BEST" in {r.id.extension for r in found}


def test_a_correlation_moves_when_the_partner_reassigns_its_id(index):
    index.add(PatientRecord(EDIPI, person()))
    index.add(PatientRecord(ICN, person()))
    theirs = II("7.7", "T1")
    index.record_correlation(EDIPI, theirs, "1.1.1")
    index.record_correlation(EDIPI, theirs, "1.1.1")  # again: no duplicate
    index.record_correlation(ICN, theirs, "1.1.1")
    index.record_correlation(ICN, theirs, "2.2.2")  # another community's same-looking id
    assert index.correlations(EDIPI) == []
    assert [c.home_community_id for c in index.correlations(ICN)] == [
        "urn:oid:1.1.1", "urn:oid:2.2.2"]
    with pytest.raises(LookupError):
        index.record_correlation(II(DOD, "nobody"), theirs, "1.1.1")


def test_concurrent_adds_of_one_new_id_make_one_record(index, db):
    barrier, errors = threading.Barrier(4), []

    def feed(i: int) -> None:
        try:
            barrier.wait()
            index.add(PatientRecord(EDIPI, person(given=f"Ann{i}")))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Patient)) == 1


def test_an_unreachable_database_is_busy_not_a_crash(tmp_path: Path):
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(IndexBusy):
            SqlPatientIndex(broken).candidates(Demographics(birth_time="19700101"))
    finally:
        broken.dispose()


def test_migration_goes_down_and_up_and_matches_the_models(database_url):
    """0003_patients creates exactly what gateway.patients.models declares (other helpers'
    tables are left to their own tests), and goes down and up again."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.store.models import Base

    migrate.upgrade(database_url)
    with migrate.locked_connection(database_url) as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 Base.metadata)

    def table_of(diff) -> str:
        item = diff[0] if isinstance(diff, list) else diff
        target = item[1] if len(item) > 1 else None
        table = getattr(target, "table", target)
        return getattr(table, "name", "") or (item[2] if len(item) > 2 else "")

    assert [d for d in diffs if str(table_of(d)).startswith("patient")] == []
    migrate.downgrade(database_url, "0002_audit")
    db = Database(database_url)
    try:
        assert not {t for t in sa.inspect(db.engine).get_table_names()
                    if t.startswith("patient")}
    finally:
        db.dispose()
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()


def test_add_many_loads_in_batches_like_add(index):
    records = [PatientRecord(II(DOD, f"B{i}"), person(given=f"G{i}")) for i in range(7)]
    records.append(PatientRecord(ICN, person(other_ids=(OtherId(II(DOD, "B3")),))))
    assert index.add_many(records, batch=3) == 8
    assert all(index.known(r.id) for r in records)
    assert index.get(ICN).group == index.get(II(DOD, "B3")).group
