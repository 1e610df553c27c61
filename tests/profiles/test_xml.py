"""The hardened parser refuses DOCTYPEs, entity tricks and oversize input."""

import pytest

from profiles.errors import SoapFault
from profiles.xml import parse_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol4;</lolz>"""


def xxe(path: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{path}">]><r>&x;</r>'
    ).encode()


def test_plain_document_parses():
    assert parse_xml(b"<a><b>text</b></a>").find("b").text == "text"


def test_billion_laughs_is_refused():
    with pytest.raises(SoapFault) as exc:
        parse_xml(BILLION_LAUGHS)
    assert exc.value.code == "Sender"
    assert "DOCTYPE" in exc.value.reason


def test_xxe_reads_no_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    with pytest.raises(SoapFault) as exc:
        parse_xml(xxe(str(secret)))
    assert "TOP-SECRET-VALUE" not in exc.value.reason


def test_parameter_entity_and_external_dtd_refused():
    doc = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>'
    with pytest.raises(SoapFault):
        parse_xml(doc)


def test_size_cap_applies_before_parsing():
    with pytest.raises(SoapFault) as exc:
        parse_xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    assert "size" in exc.value.reason


def test_malformed_xml_is_a_sender_fault():
    with pytest.raises(SoapFault) as exc:
        parse_xml(b"<a><b></a>")
    assert exc.value.code == "Sender"
