"""The MLLP listener with the PIX Manager behind it: IPF HL7 v2 samples over real sockets
(plain and mutual TLS), answered from the SQL index on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from certs.authority import create_authority, issue
from gateway.mllp import MllpServer, frame, pix_manager, read_frame, server_tls_context
from gateway.patients.index import SqlPatientIndex
from gateway.store import migrate
from gateway.store.db import Database
from profiles.hl7v3.datatypes import II
from profiles.pix.hl7v2 import decode

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
IPF = CONFORMANCE / "messages" / "ipf"
MPI = "2.16.840.1.113883.3.37.4.1.1.2.1.1"
FEEDS = {  # sample -> MSA-1 expected
    "pix-iti8-ADT_A01.hl7": "AA",
    "pix-iti8-ADT_A01-maximal.hl7": "AA",
    "pix-iti8-ADT_A04.hl7": "AA",
    "pix-iti8-ADT_A08.hl7": "AA",
    "pix-iti8-ADT_A08-maximal.hl7": "AA",
    "pix-iti8-ADT_A40-merge.hl7": "AA",
    "pix-iti8-ADT_A40-merge_multi-id.hl7": "AA",
    "pix-iti8-ADT_A40-maximal.hl7": "AA",
    "pix-iti8-ADT_A01-incomplete_no-PID.hl7": "AE",
    "pix-iti8-ADT_A01_sap-ish.hl7": "AE",  # PID-3 has no assigning authority: nothing to key on
    "../../hl7v2/ipf_adt-A10_not-an-ITI-8-trigger.hl7": "AR",
    "../../hl7v2/ipf_pix-iti8-ADT_A40_msgstruct-ADT_A39.hl7": "AA",
    "../../hl7v2/ipf_pix-iti8-ADT_A40-merge_iso-8859-1.hl7": "AA",
}


@pytest.fixture
def index(database_url: str):
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield SqlPatientIndex(database)
    database.dispose()


async def exchange(server: MllpServer, messages: list[bytes],
                   tls: ssl.SSLContext | None = None) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls)
    answers = []
    try:
        for message in messages:
            writer.write(frame(message))
            await writer.drain()
            answers.append(await read_frame(reader))
    finally:
        writer.close()
    return answers


def talk(index, messages: list[bytes], **server_options) -> list[bytes]:
    async def scenario() -> list[bytes]:
        server = MllpServer(pix_manager(index), port=0, **server_options)
        await server.start()
        try:
            return await exchange(server, messages)
        finally:
            await server.close()

    return asyncio.run(scenario())


def field(answer: bytes, segment: str, number: int) -> str:
    return decode(answer).get(segment, number)


def location(m) -> str:
    """ERR-2 (segment^sequence^field^repetition^component) as one string."""
    return "^".join(v for v in (m.get("ERR", 2, 1, c) for c in range(1, 6)) if v)


def query(pid: str, domains: str = "") -> bytes:
    return ("MSH|^~\\&|CLIENT|DEPT|PIXMGR|HOSP|20240101120000||QBP^Q23^QBP_Q21|Q1|P|2.5\r"
            f"QPD|IHE PIX Query|TAG-1|{pid}|{domains}\rRCP|I\r").encode()


def test_every_feed_sample_then_queries_over_one_connection(index):
    feeds = [(IPF / name).read_bytes() for name in FEEDS]
    answers = talk(index, [
        *feeds,
        query(f"305090^^^MPI&{MPI}&ISO"),
        query(f"305090^^^MPI&{MPI}&ISO", "^^^&1.3.6.1.4.1.21367.2005.1.2&ISO"),
        query(f"999999^^^MPI&{MPI}&ISO"),
        query("1^^^&1.2.3.999&ISO"),
        query(f"305090^^^MPI&{MPI}&ISO", "^^^&1.3.6.1.4.1.21367.2005.1.2&ISO~^^^&9.9.9&ISO"),
    ])
    assert [field(a, "MSA", 1) for a in answers[:len(FEEDS)]] == list(FEEDS.values())
    for feed, answer in zip(feeds, answers, strict=False):
        assert field(answer, "MSA", 2) == decode(feed).control_id
        assert decode(answer).message_type == "ACK"
    all_ids, one_domain, unknown_patient, unknown_domain, unknown_wanted = (
        decode(a) for a in answers[len(FEEDS):])
    assert all_ids.get("QAK", 2) == "OK" and all_ids.get("QAK", 1) == "TAG-1"
    assert {all_ids.get("PID", 3, r) for r in range(1, 4)} == {"13278", "02777", "123-4567-890"}
    assert one_domain.get("PID", 3, 1, 4, 2) == "1.3.6.1.4.1.21367.2005.1.2"
    assert one_domain.repetitions("PID", 3) == 1
    assert (unknown_patient.get("MSA", 1), unknown_patient.get("QAK", 2)) == ("AE", "AE")
    assert location(unknown_patient) == "QPD^1^3^1^1"
    assert unknown_patient.get("ERR", 3, 1, 1) == "204"
    assert location(unknown_domain) == "QPD^1^3^1^4"
    assert location(unknown_wanted) == "QPD^1^4^2"
    # the merges of the samples were applied
    assert not index.known(II(MPI, "305010")) and index.known(II(MPI, "305014"))


def test_iso_8859_1_and_utf8_are_read_and_answered_in_kind(index):
    latin = (CONFORMANCE / "hl7v2" / "ipf_pix-iti8-ADT_A40-merge_iso-8859-1.hl7").read_bytes()
    utf8 = ("MSH|^~\\&|SRC|FAC|PIX|HOSP|20240101||ADT^A01|U1|P|2.3.1||||||UNICODE UTF-8\r"
            "EVN|A01\rPID|1||U-1^^^&1.2.3.4&ISO||Zo\u00eb\\T\\Ren\u00e9e^Ana||19800101|F\r")
    latin_answer, utf8_answer = talk(index, [latin, utf8.encode("utf-8")])
    assert "\u00c4".encode("latin-1") in latin_answer  # MSH-3 "BLÄH" echoed in ISO-8859-1
    assert decode(utf8_answer).get("MSA", 1) == "AA"
    assert decode(utf8_answer).charset == "UNICODE UTF-8"
    name = index.get(II("1.2.3.4", "U-1")).person.names[0]
    assert name.family == ("Zo\u00eb&Ren\u00e9e",) and name.given == ("Ana",)


def test_a_frame_too_large_closes_the_connection(index):
    try:
        answers = talk(index, [b"MSH|" + b"x" * 5000], max_message_bytes=1000)
    except ConnectionError:  # closed while we were still writing
        answers = [None]
    assert answers == [None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = create_authority("MLLP test CA")
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.certificate_pem())
    server, client = issue(ca, "pix.test"), issue(ca, "feeder.test")
    server.save(folder / "server.pem", folder / "server.key")
    client.save(folder / "client.pem", folder / "client.key")
    return folder


def client_context(pki: Path, *, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if with_certificate:
        context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return context


def test_mutual_tls_admits_a_known_client_and_refuses_one_without_certificate(index, pki):
    tls = server_tls_context(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    sample = (IPF / "pix-iti8-ADT_A04.hl7").read_bytes()

    async def scenario():
        server = MllpServer(pix_manager(index), port=0, tls=tls)
        await server.start()
        try:
            good = await exchange(server, [sample], client_context(pki, with_certificate=True))
            refused = None
            try:
                refused = await exchange(server, [sample],
                                         client_context(pki, with_certificate=False))
            except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
                refused = "refused"
            return good, refused
        finally:
            await server.close()

    good, refused = asyncio.run(scenario())
    assert decode(good[0]).get("MSA", 1) == "AA"
    assert refused in ("refused", [None])
