"""The XUA (IHE ITI-40) assertion as the gateway sees it: names of the eHealth Exchange /
NHIN Authorization Framework attribute profile and the typed ``Principal`` they become.

Handlers, policy and audit see only these frozen values, never the SAML XML. The same
``Principal`` is what the initiating gateway hands to ``issue.py`` to speak for its user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from profiles import oid

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML1_NS = "urn:oasis:names:tc:SAML:1.0:assertion"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE11_NS = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# Formats (SAML core 8.3) accepted for Issuer and NameID by CONNECT's validator.
X509_SUBJECT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
ATTR_NAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

CM_HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
CM_SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
AC_X509 = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
ACTION_RWEDC = "urn:oasis:names:tc:SAML:1.0:action:rwedc"
NHIN_EVIDENCE_NAME_FORMAT = "http://www.hhs.gov/healthit/nhin"
SAMLID_VALUE_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"
SAML2_TOKEN_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"

# Attribute names (NHIN Authorization Framework; XSPA; IHE XUA).
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ORGANIZATION = "urn:oasis:names:tc:xspa:1.0:subject:organization"
ORGANIZATION_ID = "urn:oasis:names:tc:xspa:1.0:subject:organization-id"
HOME_COMMUNITY_ID = "urn:nhin:names:saml:homeCommunityId"
SUBJECT_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE_OF_USE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
NPI = "urn:oasis:names:tc:xspa:2.0:subject:npi"  # 2.0, unlike its neighbours
XUA_ACP = "urn:ihe:iti:xua:2012:acp"
BPPC_DOCID = "urn:ihe:iti:bppc:2007:docid"

SNOMED_CT = "2.16.840.1.113883.6.96"
NHIN_PURPOSE = "2.16.840.1.113883.3.18.7.1"
# http://healthit.gov/nhin/purposeofuse v2.0 (NHIN Authorization Framework production spec).
NHIN_PURPOSES = frozenset(
    {
        "TREATMENT",
        "PAYMENT",
        "OPERATIONS",
        "SYSADMIN",
        "FRAUD",
        "PSYCHOTHERAPY",
        "TRAINING",
        "LEGAL",
        "MARKETING",
        "DIRECTORY",
        "FAMILY",
        "PRESENT",
        "EMERGENCY",
        "DISASTER",
        "PUBLICHEALTH",
        "ABUSE",
        "OVERSIGHT",
        "JUDICIAL",
        "LAW",
        "DECEASED",
        "DONATION",
        "RESEARCH",
        "THREAT",
        "GOVERNMENT",
        "WORKERSCOMP",
        "COVERAGE",
        "REQUEST",
    }
)


@dataclass(frozen=True)
class Code:
    """An HL7 CE value (hl7:Role, hl7:PurposeOfUse): code in a code system."""

    code: str
    code_system: str
    code_system_name: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class AuthzDecision:
    """The optional AuthzDecisionStatement: a consent decision and its evidence."""

    decision: str  # Permit | Deny | Indeterminate
    resource: str
    actions: tuple[str, ...] = ("Execute",)
    access_consent_policies: tuple[str, ...] = ()
    instance_access_consent_policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssertionFacts:
    """What verification learnt about the token itself, for the audit record."""

    assertion_id: str
    issuer: str
    issuer_format: str
    signer_subject: str  # RFC 4514 subject of the certificate the signature verified with
    signature_method: str
    issue_instant: datetime
    not_on_or_after: datetime  # when the replay cache may forget the assertion


@dataclass(frozen=True)
class Principal:
    """The requesting user, as the NHIN Authorization Framework describes them.

    The first six fields are the required attributes. ``organization_id`` and
    ``home_community_id`` are kept in ``urn:oid:`` form whatever the wire used.
    ``assertion`` is set by verification and ignored by issuing.
    """

    subject_id: str  # the user's name (xspa subject-id)
    organization: str
    organization_id: str
    home_community_id: str
    role: Code  # SNOMED CT
    purpose_of_use: Code  # nhin-purpose
    name_id: str = ""  # Subject NameID; issuing falls back to the subject-id when blank
    name_id_format: str = X509_SUBJECT
    resource_id: str | None = None  # patient id, HL7 CX
    npi: str | None = None
    consent_policies: tuple[str, ...] = ()  # XUA acp
    consent_document_id: str | None = None  # BPPC docid
    authz: AuthzDecision | None = None
    assertion: AssertionFacts | None = None


def oid_uri(value: str) -> str:
    """``1.2.3`` and ``urn:oid:1.2.3`` both become ``urn:oid:1.2.3``; other URIs pass."""
    value = value.strip()
    if value[:8].lower() == "urn:oid:":
        return "urn:oid:" + value[8:]
    if is_oid(value):
        return "urn:oid:" + value
    return value


def is_oid(value: str) -> bool:
    """Lenient, as assertions from peers write OIDs: any first arc, leading zeros too."""
    return oid.is_oid(value, allow_any_first_arc=True, allow_leading_zeros=True)


_EMAIL = re.compile(r"[^@\s]{1,256}@[^@\s.]{1,256}(?:\.[^@\s.]{1,256})+")
_TYPE = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)\s*=")
MAX_NAME = 1024


def name_ok(value: str, fmt: str) -> bool:
    """Whether an Issuer/NameID value has the shape its Format promises."""
    if not value or len(value) > MAX_NAME:
        return False
    if fmt == X509_SUBJECT:
        return _distinguished_name(value)
    if fmt == EMAIL:
        return _EMAIL.fullmatch(value) is not None
    return True


def _distinguished_name(value: str) -> bool:
    """RFC 4514 shape, ``type=value`` parts split by commas; one linear scan."""
    i, n = 0, len(value)
    while True:
        m = _TYPE.match(value, i)
        if not m:
            return False
        i = m.end()
        quoted = i < n and value[i] == '"'
        i += quoted
        while i < n and (value[i] != '"' if quoted else value[i] != ","):
            i += 2 if value[i] == "\\" else 1
        if quoted:
            if i >= n:
                return False
            i += 1
            while i < n and value[i] == " ":
                i += 1
        if i >= n:
            return True
        if value[i] != ",":
            return False
        i += 1


_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?")


def parse_datetime(value: str | None) -> datetime:
    """An xs:dateTime as an aware UTC datetime; no zone means UTC (SAML core 1.3.3)."""
    m = _DATETIME.fullmatch((value or "").strip())
    if not m:
        raise ValueError(f"not an xs:dateTime: {value!r}")
    base, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    when = datetime.fromisoformat(f"{base}{zone if zone and zone != 'Z' else '+00:00'}")
    return when.replace(microsecond=micro).astimezone(UTC)


def xml_datetime(value: datetime) -> str:
    """UTC xs:dateTime with milliseconds and Z, the form SAML peers expect."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
