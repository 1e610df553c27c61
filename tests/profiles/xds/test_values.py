"""Value formats (CX, OID, UUID URN, DTM) and the closed vocabularies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from profiles.errors import XDSRegistryMetadataError
from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentAvailability,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.values import (
    CX,
    dtm_from_datetime,
    dtm_high,
    dtm_low,
    is_dtm,
    is_oid,
    is_symbolic,
    is_uuid_urn,
    new_uuid_urn,
)


def test_cx_parses_the_xds_form_and_prints_it_back():
    cx = CX.parse("SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO")
    assert cx == CX("SELF-5", "1.3.6.1.4.1.21367.2005.3.7")
    assert str(cx) == "SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("SELF-5", "exactly four components"),
        ("SELF-5^^^&1.2.3&ISO^PI", "exactly four components"),
        ("^^^&1.2.3&ISO", "CX.1"),
        ("SELF-5^1^^&1.2.3&ISO", "CX.2 and CX.3"),
        ("SELF-5^^M10^&1.2.3&ISO", "CX.2 and CX.3"),
        ("SELF-5^^^1.2.3", "&OID&ISO"),
        ("SELF-5^^^NS&1.2.3&ISO", "namespace"),
        ("SELF-5^^^&1.2.3&DNS", "ISO"),
        ("SELF-5^^^&not.an.oid&ISO", "OID"),
        ("SELF-5^^^&1." + "2" * 70 + "&ISO", "OID"),
        (" SELF-5^^^&1.2.3&ISO", "blanks"),
    ],
)
def test_cx_parse_is_strict(value, why):
    with pytest.raises(XDSRegistryMetadataError) as caught:
        CX.parse(value)
    assert why in caught.value.context
    assert caught.value.code == "XDSRegistryMetadataError"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1.2.3", True),
        ("2.16.840.1.113883.3.9621", True),
        ("1.0.3", True),
        ("1", False),
        ("1.02.3", False),
        ("1.2.", False),
        ("1..2", False),
        ("a.b", False),
        ("", False),
        (None, False),
        ("1." + "1" * 62, True),  # 64 characters
        ("1." + "1" * 63, False),  # 65 characters
    ],
)
def test_is_oid(value, ok):
    assert is_oid(value) is ok


def test_uuid_urns_and_symbolic_ids():
    fresh = new_uuid_urn()
    assert is_uuid_urn(fresh) and not is_symbolic(fresh)
    assert is_uuid_urn("urn:uuid:E0985823-DC50-45A5-A6C8-A11A829893BD")
    assert not is_uuid_urn("urn:uuid:e0985823-dc50-45a5-a6c8")
    assert not is_uuid_urn("e0985823-dc50-45a5-a6c8-a11a829893bd")
    assert is_symbolic("Document01") and is_symbolic("018e81dd-ddaf-7d7c-b02c-d8a145ebb0c8")


@pytest.mark.parametrize(
    "value", ["2024", "202402", "20240229", "2024022923", "202402292359", "20240229235959"]
)
def test_dtm_accepts_every_precision(value):
    assert is_dtm(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "202",
        "20241",
        "20241301",
        "20230229",
        "20240101246000",
        "20070517084906-0400",
        "2024-03-27T21:43:04.878Z",
        "20240101120000.5",
        None,
    ],
)
def test_dtm_refuses_other_forms(value):
    assert not is_dtm(value)


def test_dtm_bounds_sort_across_precisions():
    assert dtm_low("2004") == "20040101000000"
    assert dtm_high("2004") == "20041231235959"
    assert dtm_low("200412230800") == "20041223080000"
    assert dtm_high("20041223") == "20041223235959"
    # A day-precision stop covers the whole day: a minute-precision start inside it is not after it.
    assert dtm_low("200412231700") <= dtm_high("20041223")
    assert sorted(["2005", "20041231", "200412"], key=dtm_low) == ["200412", "20041231", "2005"]


def test_dtm_from_datetime_is_utc_to_the_second():
    eastern = timezone(timedelta(hours=-5))
    assert dtm_from_datetime(datetime(2024, 1, 2, 22, 30, 1, 999, tzinfo=eastern)) == (
        "20240103033001"
    )
    assert dtm_from_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20240102030405"


@pytest.mark.parametrize(
    "enum",
    [
        AssociationType,
        AvailabilityStatus,
        DocumentEntryType,
        SubmissionSetStatus,
        DocumentAvailability,
    ],
)
def test_a_bad_vocabulary_value_is_a_metadata_error(enum):
    with pytest.raises(XDSRegistryMetadataError) as caught:
        enum("HasMember-ish")
    assert "'HasMember-ish' is not a valid" in caught.value.context


def test_association_type_groups():
    assert AssociationType("urn:ihe:iti:2007:AssociationType:RPLC").replaces
    assert AssociationType.XFRM_RPLC.replaces and not AssociationType.APND.replaces
    relationships = {t for t in AssociationType if t.is_document_relationship}
    assert relationships == {
        AssociationType.RPLC,
        AssociationType.XFRM,
        AssociationType.APND,
        AssociationType.XFRM_RPLC,
        AssociationType.SIGNS,
    }
    assert AssociationType.SUBMIT_ASSOCIATION.value == (
        "urn:ihe:iti:2010:AssociationType:SubmitAssociation"
    )
