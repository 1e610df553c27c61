"""RFC 5424 messages, RFC 5425 frames in any chunking, RFC 5426 datagram limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from profiles.atna.syslog import (
    BOM,
    UDP_MAX_IPV4,
    UDP_MUST_ACCEPT_IPV4,
    DatagramTooLarge,
    FrameDecoder,
    FrameError,
    SyslogError,
    SyslogMessage,
    audit_syslog,
    datagram,
    encode,
    frame,
    parse,
)

XML = b'<?xml version="1.0" encoding="UTF-8"?><AuditMessage>\xc3\xa9</AuditMessage>'
WHEN = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def ihe(payload: bytes = XML, **kw) -> bytes:
    fields = dict(timestamp=WHEN, hostname="gw.example.org", app_name="ihe-gateway", procid="42")
    fields.update(kw)
    return audit_syslog(payload, **fields)


def test_audit_message_has_the_ihe_header_bom_and_xml():
    assert ihe() == (
        b"<85>1 2024-01-02T03:04:05.678Z gw.example.org ihe-gateway 42 IHE+RFC-3881 - " + BOM + XML
    )
    assert ihe(severity=4).startswith(b"<84>1 ")


def test_parse_returns_every_field():
    msg = parse(ihe())
    assert msg == SyslogMessage(
        payload=XML,
        hostname="gw.example.org",
        app_name="ihe-gateway",
        procid="42",
        msgid="IHE+RFC-3881",
        timestamp=WHEN,
        facility=10,
        severity=5,
        bom=True,
    )
    assert msg.pri == 85
    assert encode(msg) == ihe()


def test_nil_values_and_offsets():
    data = b"<13>1 2024-01-02T04:04:05.5+01:00 - - - - - hello"
    msg = parse(data)
    assert (msg.hostname, msg.app_name, msg.procid, msg.msgid) == (None, None, None, None)
    assert msg.timestamp == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert msg.timestamp.utcoffset() == timedelta(hours=1)
    assert (msg.payload, msg.bom, msg.facility, msg.severity) == (b"hello", False, 1, 5)
    assert parse(b"<0>1 - - - - - -") == SyslogMessage(
        payload=b"", msgid=None, facility=0, severity=0, bom=False
    )
    assert encode(parse(b"<0>1 - - - - - -")) == b"<0>1 - - - - - -"


def test_structured_data_with_escapes_spaces_and_brackets_is_kept_whole():
    sd = r'[origin ip="10.0.0.1" software="gw \"x\" [1\]"][meta sequenceId="7"]'
    data = b"<85>1 - host app - IHE+RFC-3881 " + sd.encode() + b" " + BOM + XML
    msg = parse(data)
    assert msg.structured_data == sd
    assert msg.payload == XML
    assert encode(msg) == data


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"85>1 - - - - - -", "RFC 5424"),
        (b"<192>1 - - - - - -", "PRI"),
        (b"<85>2 - - - - - -", "VERSION"),
        (b"<85>1 - - - - -", "RFC 5424"),  # a field missing
        (b"<85>1 2024-01-02 03:04:05Z h a p m -", "RFC 5424"),
        (b"<85>1 2024-01-02T03:04:05.1234567Z h a p m -", "TIMESTAMP"),
        (b"<85>1 2024-01-02t03:04:05Z h a p m -", "TIMESTAMP"),
        (b"<85>1 2024-02-30T03:04:05Z h a p m -", "TIMESTAMP"),
        (b"<85>1 - " + b"h" * 256 + b" a p m -", "HOSTNAME"),
        (b"<85>1 - h " + b"a" * 49 + b" p m -", "APP-NAME"),
        (b"<85>1 - h a p " + b"m" * 33 + b" -", "MSGID"),
        (b"<85>1 - h\xc3\xa9 a p m -", "HOSTNAME"),
        (b'<85>1 - h a p m [x a="1"', "unterminated"),
        (b"<85>1 - h a p m []", "empty"),
        (b"<85>1 - h a p m {}", "STRUCTURED-DATA"),
        (b"<85>1 - h a p m -x", "STRUCTURED-DATA"),
    ],
)
def test_malformed_messages_are_refused(data, why):
    with pytest.raises(SyslogError, match=why):
        parse(data)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (dict(hostname="gw example"), "HOSTNAME"),
        (dict(app_name="a" * 49), "APP-NAME"),
        (dict(procid=""), "PROCID"),
        (dict(timestamp=datetime(2024, 1, 1)), "timezone"),
        (dict(severity=8), "severity"),
    ],
)
def test_values_that_would_break_the_header_are_refused(fields, why):
    with pytest.raises(SyslogError, match=why):
        ihe(**fields)


def test_timestamps_are_written_in_utc():
    local = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert b" 2024-01-02T03:04:05Z " in ihe(timestamp=local)


# -- RFC 5425 framing ------------------------------------------------------------------


def stream(n: int = 40, seed: int = 5) -> tuple[list[bytes], bytes]:
    rng = random.Random(seed)
    messages = [ihe(XML * rng.randint(1, 60), procid=str(i)) for i in range(n)] + [
        b"x",
        b"y" * 9,
        b"z" * 10,
    ]  # lengths of 1 and 2 digits at the edges
    return messages, b"".join(frame(m) for m in messages)


def test_frame_is_length_space_message():
    msg = ihe()
    assert frame(msg) == str(len(msg)).encode() + b" " + msg
    with pytest.raises(FrameError):
        frame(b"")


def test_every_split_point_of_two_frames_decodes_the_same():
    messages = [ihe(procid="1"), ihe(XML * 3, procid="2")]
    data = b"".join(frame(m) for m in messages)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert got == messages, cut
        decoder.close()


def test_random_chunks_byte_by_byte_and_all_at_once():
    messages, data = stream()
    rng = random.Random(11)
    for _ in range(30):
        decoder, got, pos = FrameDecoder(), [], 0
        while pos < len(data):
            size = rng.choice([1, 2, 3, 7, 64, 1000, 5000, 70000])
            got += decoder.feed(data[pos : pos + size])
            pos += size
        assert got == messages
        assert decoder.buffered == 0
        decoder.close()
    byte_wise = FrameDecoder()
    assert [m for i in range(len(data)) for m in byte_wise.feed(data[i : i + 1])] == messages
    assert FrameDecoder().feed(data) == messages  # several messages in one chunk


def test_a_partial_frame_waits_and_is_reported_at_end_of_stream():
    msg = ihe()
    decoder = FrameDecoder()
    assert decoder.feed(frame(msg)[:-1]) == []
    assert decoder.buffered == len(msg) - 1
    with pytest.raises(FrameError, match="ended inside"):
        decoder.close()
    half = FrameDecoder()
    assert half.feed(b"12") == []
    with pytest.raises(FrameError):
        half.close()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"abc hello", "decimal"),
        (b"12a", "decimal"),
        (b"0 ", "leading zero"),
        (b"012 hello", "leading zero"),
        (b" 5 hello", "missing"),
        (b"<85>1 - - - - - -\n", "non-transparent"),
        (b"1048577 ", "limit"),
        (b"99999999", "limit"),  # refused before the space arrives
        (b"5\n hello", "decimal"),
    ],
)
def test_malformed_frames_are_refused_and_the_stream_stays_refused(data, why):
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match=why):
        decoder.feed(data)
    assert decoder.buffered == 0
    with pytest.raises(FrameError, match=why):
        decoder.feed(frame(ihe()))
    with pytest.raises(FrameError):
        decoder.close()


def test_good_frames_before_a_bad_one_are_delivered_then_the_error_is_raised():
    """Syslog has no acknowledgement: the sender counts frames it wrote as delivered,
    so the ones before the damage must still reach the repository."""
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"ok") + frame(b"fine") + b"x1 bad") == [b"ok", b"fine"]
    with pytest.raises(FrameError, match="decimal"):
        decoder.feed(b"")
    eof = FrameDecoder()
    assert eof.feed(frame(b"ok") + b"0 ") == [b"ok"]
    with pytest.raises(FrameError, match="leading zero"):
        eof.close()


def test_frame_size_limit_is_configurable():
    decoder = FrameDecoder(max_frame=100)
    assert decoder.feed(frame(b"a" * 100)) == [b"a" * 100]
    with pytest.raises(FrameError, match="100-octet"):
        decoder.feed(b"101 ")


# -- RFC 5426 datagrams --------------------------------------------------------------


def test_datagrams_over_the_limit_are_refused_not_truncated():
    msg = ihe(b"x" * (UDP_MAX_IPV4 - len(ihe(b""))))
    assert len(msg) == UDP_MAX_IPV4
    assert datagram(msg) is msg
    with pytest.raises(DatagramTooLarge, match="65507"):
        datagram(msg + b"x")
    small = ihe()
    with pytest.raises(DatagramTooLarge):
        datagram(ihe(XML * 10), max_size=UDP_MUST_ACCEPT_IPV4)
    assert parse(datagram(small, max_size=UDP_MUST_ACCEPT_IPV4)).payload == XML
