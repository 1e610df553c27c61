"""Fixtures for the ATNA core: the DICOM audit schema, IPF's real audit messages,
and the endpoints and people a transaction record is built from."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from profiles.atna.codec import audit_message_to_xml
from profiles.atna.codes import AuditSourceType
from profiles.atna.events import Endpoint, HumanRequestor, Occasion
from profiles.atna.message import AuditMessage, AuditSourceIdentification, CodedValue


@pytest.fixture(scope="session")
def audit_schema(conformance: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(conformance / "schemas/atna/dicom2017c.xsd")))


@pytest.fixture(scope="session")
def assert_valid(audit_schema: etree.XMLSchema) -> Callable[[AuditMessage], etree._Element]:
    """Serialise a message and fail with the schema's own words if it is invalid."""

    def check(message: AuditMessage) -> etree._Element:
        el = audit_message_to_xml(message)
        if not audit_schema.validate(el):
            pytest.fail(f"invalid audit message: {audit_schema.error_log}")
        return el

    return check


@pytest.fixture(scope="session")
def ipf_samples(conformance: Path) -> dict[str, bytes]:
    files = sorted((conformance / "messages/ipf").glob("atna-*.xml"))
    assert len(files) == 7, "expected IPF's seven audit samples"
    return {f.name: f.read_bytes() for f in files}


@pytest.fixture
def occasion() -> Occasion:
    return Occasion(
        audit_source=AuditSourceIdentification(
            "gateway.example.org",
            enterprise_site_id="1.3.6.1.4.1.21367.2011.2.1",
            type_codes=(AuditSourceType.APPLICATION_SERVER,),
        ),
        when=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
    )


@pytest.fixture
def initiator() -> Endpoint:
    return Endpoint(
        "http://www.w3.org/2005/08/addressing/anonymous",
        host="10.1.2.3",
        process_id="4242",
        user_name="CN=partner-gw.example.net",
    )


@pytest.fixture
def responder() -> Endpoint:
    return Endpoint("https://gateway.example.org/xca/query", host="gateway.example.org")


@pytest.fixture
def human() -> HumanRequestor:
    return HumanRequestor(
        subject_id="Dr. Jane Smith",
        name_id="jsmith",
        issuer="https://idp.partner.example.net",
        sp_provided_id="js",
        organization="Partner Health",
        organization_id="urn:oid:1.2.3.4.5",
        roles=(CodedValue("112247003", "2.16.840.1.113883.6.96", "Medical doctor"),),
        purposes_of_use=(CodedValue("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment"),),
    )
