"""HL7 v2 PIX (ITI-8, ITI-9) without sockets: charsets, escapes, PID, ACK and RSP^K23."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.hl7v2 import V2Error, decode, pid_person
from profiles.pix.hl7v3 import parse_patient_identity_feed
from profiles.pix.manager import respond
from profiles.pix.ports import PatientRecord
from tests.profiles.pix.fake_index import FakePatientIndex

CONFORMANCE = Path(__file__).resolve().parents[3].parent / "shared" / "conformance"
IPF = CONFORMANCE / "messages" / "ipf"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def msg(*segments: str, charset: str = "", version: str = "2.3.1") -> bytes:
    msh = f"MSH|^~\\&|SRC|FAC|PIX|HOSP|20240101||{segments[0]}|C-1|P|{version}"
    if charset:
        msh += "||||||" + charset
    return "\r".join((msh, *segments[1:])).encode("utf-8" if "UTF" in charset else "latin-1")


def answer(raw: bytes, index=None):
    return decode(respond(raw, index or FakePatientIndex(), now=NOW))


def test_the_v2_feed_reads_like_its_v3_translation(hl7_message):
    """IPF translated the same patient to PIXv3: both codecs must see the same person."""
    v2 = decode((IPF / "pix-iti8-ADT_A01-maximal.hl7").read_bytes())
    ids, person = pid_person(v2)
    v3 = parse_patient_identity_feed(hl7_message(
        "messages/ipf/pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml", "PRPA_IN201301UV02"))
    other = v3.patient.person
    assert (ids[0].root, ids[0].extension) == (v3.patient.id.root, v3.patient.id.extension)
    first, theirs = person.names[0], other.names[0]
    assert (first.given, first.family, first.prefix, first.suffix, first.use) == (
        theirs.given, theirs.family, theirs.prefix, theirs.suffix, theirs.use)
    # IPF joined "^ANNE" and the birth name "DEAN^^^^^^B" into one; we keep the two names
    assert [(n.given, n.family) for n in person.names[1:]] == [(("ANNE",), ()), ((), ("DEAN",))]
    assert person.names[2].parts[0].qualifier == other.names[1].parts[1].qualifier == "BR"
    assert person.gender.code == other.gender.code and person.birth_time == other.birth_time
    assert [a.postal_code for a in person.addresses] == [a.postal_code for a in other.addresses]
    assert len(person.telecoms) == len(other.telecoms) == 5
    assert person.telecoms[3].value == "mailto:marywash@gmx.de"
    assert person.birth_place_name == other.birth_place_name == "Chicago"
    assert person.marital_status.code == other.marital_status.code == "M"
    assert II("2.16.840.1.113883.4.1", "100-09-1234") in {o.id for o in person.other_ids}


def test_escape_sequences_are_undone_on_reading():
    raw = msg("ADT^A01", "PID|1||A\\F\\1^^^&1.2.3&ISO||O\\S\\Neil\\T\\Sons^Ann\\E\\||1970|F")
    ids, person = pid_person(decode(raw))
    assert ids[0].extension == "A|1"
    assert person.names[0].family == ("O^Neil&Sons",) and person.names[0].given == ("Ann\\",)


def test_charsets():
    latin = msg("ADT^A01", "PID|1||1^^^&1.2.3&ISO||M\u00fcller^J\u00f6rg", charset="8859/1")
    assert pid_person(decode(latin))[1].names[0].family == ("M\u00fcller",)
    undeclared = msg("ADT^A01", "PID|1||1^^^&1.2.3&ISO||M\u00fcller")  # latin-1, no MSH-18
    assert decode(undeclared).encoding == "latin-1"
    lying = latin.replace(b"8859/1", b"UNICODE UTF-8")
    with pytest.raises(V2Error) as err:
        decode(lying)
    assert (err.value.ack, err.value.code) == ("AR", "102")
    with pytest.raises(V2Error) as err:
        decode(latin.replace(b"8859/1", b"ISO IR87"))
    assert err.value.code == "103"


def test_a_feed_is_stored_and_acknowledged():
    index = FakePatientIndex()
    a = answer(msg("ADT^A04", "EVN|A04", "PID|1||P-1^^^DOM&1.2.3&ISO~X^^^NS||Lee^Ann||19700101|F",
                   "PV1||O"), index)
    assert (a.get("MSH", 9, 1, 1), a.get("MSH", 9, 1, 2), a.get("MSA", 1), a.get("MSA", 2)) == (
        "ACK", "A04", "AA", "C-1")
    assert (a.get("MSH", 3), a.get("MSH", 5), a.version) == ("PIX", "SRC", "2.3.1")
    assert index.get(II("1.2.3", "P-1")).person.names[0].family == ("Lee",)


@pytest.mark.parametrize(("segments", "ack", "code"), [
    (("ADT^A01", "EVN|A01", "PV1||O"), "AE", "100"),
    (("ADT^A01", "PID|1||P-1^^^NS"), "AE", "204"),
    (("ADT^A01", "PID|1||"), "AE", "101"),
    (("ADT^A01", "PID|1||P-1^^^&1.2.3&ISO||Lee||1st May"), "AE", "102"),
    (("ADT^A40", "PID|1||P-1^^^&1.2.3&ISO||Lee"), "AE", "100"),
    (("ADT^A40", "PID|1||P-1^^^&1.2.3&ISO||Lee", "MRG|P-0^^^NS"), "AE", "204"),
    (("ADT^A10", "PID|1||P-1^^^&1.2.3&ISO"), "AR", "201"),
    (("ORU^R01", "PID|1"), "AR", "200"),
])
def test_feeds_that_cannot_be_used_are_refused_with_err(segments, ack, code):
    index = FakePatientIndex()
    a = answer(msg(*segments), index)
    assert (a.get("MSA", 1), a.get("ERR", 1, 1, 4, 1)) == (ack, code)  # ERR-1: v2.3.1 form
    assert not index.records


def test_a_merge_per_pid_mrg_pair():
    index = FakePatientIndex()
    index.add(PatientRecord(II("1.2.3", "OLD")))
    a = answer(msg("ADT^A40", "PID|1||NEW^^^&1.2.3&ISO||Lee^Ann", "MRG|OLD^^^&1.2.3&ISO"),
               index)
    assert a.get("MSA", 1) == "AA"
    assert not index.known(II("1.2.3", "OLD")) and index.known(II("1.2.3", "NEW"))


def test_a_busy_index_and_a_closed_domain_list():
    feed = msg("ADT^A01", "PID|1||P-1^^^&1.2.3&ISO||Lee")
    assert answer(feed, FakePatientIndex(busy=True)).get("ERR", 1, 1, 4, 1) == "207"
    assert answer(feed, FakePatientIndex(closed_domains=True)).get("ERR", 1, 1, 4, 1) == "204"


def test_query_answers_in_v25_form():
    index = FakePatientIndex()
    index.add(PatientRecord(II("1.2.3", "P-1"), Person(other_ids=(OtherId(II("4.5", "Q|9")),))))
    qpd = "QPD|IHE PIX Query|T-7|P-1^^^&1.2.3&ISO"
    ok = answer(msg("QBP^Q23^QBP_Q21", qpd, "RCP|I", version="2.5"), index)
    assert (ok.get("MSA", 1), ok.get("QAK", 1), ok.get("QAK", 2)) == ("AA", "T-7", "OK")
    assert (ok.get("PID", 3, 1, 1), ok.get("PID", 3, 1, 4, 2)) == ("Q|9", "4.5")  # escaped, read
    assert ok.get("PID", 5, 2, 7) == "S" and ok.get("QPD", 3) == "P-1"
    assert (ok.get("MSH", 9, 1, 1), ok.get("MSH", 9, 1, 2), ok.get("MSH", 9, 1, 3)) == (
        "RSP", "K23", "RSP_K23")
    nf = answer(msg("QBP^Q23", qpd + "|^^^&1.2.3&ISO", "RCP|I", version="2.5"), index)
    assert (nf.get("MSA", 1), nf.get("QAK", 2), nf.count("PID")) == ("AA", "NF", 0)
    busy = answer(msg("QBP^Q23", qpd, version="2.5"), FakePatientIndex(busy=True))
    assert (busy.get("QAK", 2), busy.get("ERR", 3, 1, 1), busy.get("ERR", 4)) == (
        "AE", "207", "E")


def test_garbage_gets_a_reject_not_silence():
    a = decode(respond(b"\x00garbage", FakePatientIndex(), now=NOW))
    assert (a.get("MSA", 1), a.get("ERR", 3, 1, 1)) == ("AR", "100")
