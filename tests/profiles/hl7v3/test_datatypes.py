"""HL7 v3 data types: models, their elements, and the lenient/strict edges of parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from lxml import etree

from profiles.hl7v3.codec import (
    ad_to_xml,
    checked_ts,
    ii_to_xml,
    parse_ad,
    parse_ii,
    parse_int,
    parse_pn,
    parse_tel,
    pn_to_xml,
    tel_to_xml,
)
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, NamePart, is_oid, strip_urn_oid
from profiles.hl7v3.errors import Hl7v3SyntaxError
from profiles.hl7v3.xmlutil import HL7, location


def hl7(xml: str) -> etree._Element:
    return etree.fromstring(f'<r xmlns="{HL7}">{xml}</r>')[0]


def test_ts_keeps_hl7_precision_and_derives_dates():
    assert TS("19630805").to_date() == date(1963, 8, 5)
    assert TS("2009041715").to_datetime() == datetime(2009, 4, 17, 15, tzinfo=UTC)
    assert TS("20090417150301-0500").to_datetime() == datetime(
        2009, 4, 17, 15, 3, 1, tzinfo=timezone(-timedelta(hours=5)))
    assert TS("1963").to_date() is None  # year only: no calendar date to give
    assert TS("19849711").to_date() is None  # month 97, as one NIST sample sends
    assert TS("19849711").is_valid  # ...which the schema pattern still accepts


def test_ts_parse_rewrites_iso_8601_to_hl7():
    assert TS.parse("2024-04-09T18:19:22.811Z") == TS("20240409181922.811+0000")
    assert TS.parse("1981-01-01") == TS("19810101")
    assert TS.parse(" 19810101 ") == TS("19810101")
    assert TS.parse("$dob$") == TS("$dob$")  # kept verbatim; checked_ts refuses it
    assert not TS("$dob$").is_valid
    assert TS.of(date(2001, 2, 3)) == TS("20010203")
    assert TS.of(datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))) == TS(
        "20010203030506")


def test_checked_ts_refuses_a_malformed_birth_time_with_syn102():
    el = hl7('<birthTime value="1963-8-5x"/>')
    with pytest.raises(Hl7v3SyntaxError) as err:
        checked_ts(el)
    assert err.value.code == "SYN102"
    assert err.value.location == "/r/birthTime/@value"


def test_ii_reads_trimmed_attributes_and_treats_blank_as_absent():
    ii = parse_ii(hl7('<id root=" 1.2.3 " extension="" assigningAuthorityName="A"/>'))
    assert ii == II("1.2.3", None, "A")
    assert str(II("1.2.3", "x")) == "x^^^&1.2.3&ISO"
    assert parse_ii(ii_to_xml("id", II("1.2", "7", null_flavor=None))) == II("1.2", "7")


def test_oid_helpers():
    assert is_oid("1.3.6.1.4.1.19376.1.2.27.3")
    assert not is_oid("1.02.3") and not is_oid("${#Project#LocalHCID}") and not is_oid(None)
    assert strip_urn_oid("urn:oid:urn:oid: 1.2.3") == "1.2.3"


def test_pn_keeps_part_order_qualifiers_use_and_free_text():
    pn = parse_pn(hl7('<name use="L"><prefix qualifier="AC">Dr.</prefix><given>MARY</given>'
                      '<given>ROSE</given><family partType="FAM"> WASHINGTON </family>'
                      '<suffix>II</suffix></name>'))
    assert pn.given == ("MARY", "ROSE") and pn.family == ("WASHINGTON",)
    assert pn.prefix == ("Dr.",) and pn.suffix == ("II",) and pn.use == ("L",)
    assert pn.parts[0] == NamePart("prefix", "Dr.", "AC")
    assert parse_pn(pn_to_xml("name", pn)) == pn
    unknown = parse_pn(hl7("<name>Unknown</name>"))
    assert unknown.text == "Unknown" and not unknown.parts
    assert parse_pn(pn_to_xml("name", unknown)) == unknown
    assert PN.of("Jim", "Jones").given == ("Jim",)
    assert parse_pn(hl7("<name/>")).is_empty


def test_ad_keeps_every_part_as_a_string():
    ad = parse_ad(hl7("<addr use='H'><streetAddressLine>1 A St</streetAddressLine>"
                      "<streetAddressLine>APT 1A</streetAddressLine><city>Helena</city>"
                      "<state>AL</state><postalCode>05080</postalCode><country>USA</country>"
                      "<houseNumber>5</houseNumber></addr>"))
    assert ad.street_lines == ("1 A St", "APT 1A") and ad.postal_code == "05080"
    assert ad.city == "Helena" and ad.state == "AL" and ad.country == "USA" and ad.use == ("H",)
    assert ad.parts[-1].kind == "houseNumber"
    assert parse_ad(ad_to_xml("addr", ad)) == ad
    assert AD.of("1 A St", "Helena", "AL", "05080").postal_code == "05080"
    assert parse_ad(hl7("<addr/>")).is_empty


def test_tel_scheme_and_uses():
    tel = parse_tel(hl7('<telecom use="HP MC" value="tel:+1-555-0100"/>'))
    assert tel == TEL("tel:+1-555-0100", ("HP", "MC")) and tel.scheme == "tel"
    assert parse_tel(tel_to_xml("telecom", tel)) == tel


def test_int_must_be_an_integer():
    assert parse_int(hl7('<value value="92"/>')) == 92
    with pytest.raises(Hl7v3SyntaxError) as err:
        parse_int(hl7('<value value="ninety"/>'))
    assert err.value.code == "SYN102"


def test_location_indexes_only_repeated_siblings():
    root = etree.fromstring(
        f'<PRPA_IN201309UV02 xmlns="{HL7}"><controlActProcess><queryByParameter><parameterList>'
        "<dataSource><value/></dataSource><dataSource><value/></dataSource>"
        "<patientIdentifier><value/></patientIdentifier>"
        "</parameterList></queryByParameter></controlActProcess></PRPA_IN201309UV02>")
    plist = root[0][0][0]
    assert location(plist[1][0]) == (
        "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/dataSource[2]/value")
    assert location(plist[2][0]).endswith("/parameterList/patientIdentifier/value")
    assert location(plist, "id") == (
        "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList/id")
