"""WS-Addressing: required and single-valued headers; reply headers relate to the request."""

import pytest
from lxml import etree

from gateway.soap.addressing import read_addressing, reply_headers
from profiles.errors import WSA_NS, SoapFault


def headers(xml: str) -> tuple:
    root = etree.fromstring(f"<h xmlns:wsa='{WSA_NS}'>{xml}</h>")
    return tuple(root)


def test_reads_all_properties():
    a = read_addressing(
        headers(
            "<wsa:Action> urn:ihe:iti:2007:CrossGatewayQuery </wsa:Action>"
            "<wsa:MessageID>urn:uuid:1</wsa:MessageID><wsa:To>https://x/y</wsa:To>"
            "<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous"
            "</wsa:Address></wsa:ReplyTo>"
        )
    )
    assert a.action == "urn:ihe:iti:2007:CrossGatewayQuery"
    assert (a.message_id, a.to) == ("urn:uuid:1", "https://x/y")
    assert a.reply_to == f"{WSA_NS}/anonymous"


def test_missing_action_is_required_header_fault():
    with pytest.raises(SoapFault) as exc:
        read_addressing(headers("<wsa:MessageID>urn:uuid:1</wsa:MessageID>"))
    assert exc.value.subcodes == [(WSA_NS, "MessageAddressingHeaderRequired")]
    assert exc.value.detail == {"ProblemHeaderQName": "wsa:Action"}


def test_soap11_falls_back_to_soapaction():
    assert read_addressing((), fallback_action="urn:a").action == "urn:a"


@pytest.mark.parametrize("name", ["Action", "MessageID", "To"])
def test_duplicates_are_invalid(name: str):
    with pytest.raises(SoapFault) as exc:
        read_addressing(headers(f"<wsa:{name}>urn:a</wsa:{name}>" * 2))
    assert exc.value.subcodes == [(WSA_NS, "InvalidAddressingHeader")]


def test_empty_action_is_invalid():
    with pytest.raises(SoapFault) as exc:
        read_addressing(headers("<wsa:Action>  </wsa:Action>"))
    assert exc.value.subcodes == [(WSA_NS, "InvalidAddressingHeader")]


def test_reply_headers_relate_to_request():
    out = reply_headers("urn:reply", "urn:uuid:req")
    by_name = {etree.QName(e).localname: e.text for e in out}
    assert by_name["Action"] == "urn:reply"
    assert by_name["RelatesTo"] == "urn:uuid:req"
    assert by_name["MessageID"].startswith("urn:uuid:")
    assert "RelatesTo" not in {etree.QName(e).localname for e in reply_headers("urn:r", None)}
