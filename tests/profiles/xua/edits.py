"""Edits that give a sample assertion another meaning: IPF's Swiss EPR shape turned into
the eHx profile, and forged copies for signature-wrapping attacks."""

from __future__ import annotations

from lxml import etree

from profiles.xua.assertion import (
    CM_HOLDER_OF_KEY,
    HL7_NS,
    HOME_COMMUNITY_ID,
    NHIN_PURPOSE,
    SNOMED_CT,
    XSI_NS,
)
from tests.profiles.xua.messages import NS, clone, q, set_holder_of_key
from tests.profiles.xua.pki import Identity


def ipf_to_ehx(
    assertion: etree._Element, *, name_format: str, issuer: str, subject: str, hok: Identity
) -> None:
    """Give IPF's Swiss EPR assertion what the eHx profile requires, keeping its style:
    Issuer and NameID in ``name_format``, one organization, the eHx HomeCommunityId
    attribute, SNOMED CT role, NHIN purpose, holder-of-key confirmation by ``hok``."""
    assertion.find(q("saml2", "Issuer")).set("Format", name_format)
    assertion.find(q("saml2", "Issuer")).text = issuer
    name_id = assertion.find("saml2:Subject/saml2:NameID", NS)
    name_id.attrib.clear()
    name_id.set("Format", name_format)
    name_id.text = subject
    statement = assertion.find(q("saml2", "AttributeStatement"))
    for attr in list(statement):
        name = attr.get("Name")
        if name.endswith(("organization", "organization-id")):
            for extra in attr.findall(q("saml2", "AttributeValue"))[1:]:
                attr.remove(extra)  # Swiss EPR lists several; eHx allows one
        if name == "urn:ihe:iti:xca:2010:homeCommunityId":
            attr.set("Name", HOME_COMMUNITY_ID)
    for role in statement.iter(f"{{{HL7_NS}}}Role"):
        role.attrib.update({"code": "224608005", "codeSystem": SNOMED_CT})
    for purpose in statement.iter(f"{{{HL7_NS}}}PurposeOfUse"):
        purpose.attrib.update({"code": "TREATMENT", "codeSystem": NHIN_PURPOSE})
    confirmation = assertion.find("saml2:Subject/saml2:SubjectConfirmation", NS)
    confirmation.set("Method", CM_HOLDER_OF_KEY)
    data = confirmation.find(q("saml2", "SubjectConfirmationData"))
    data.attrib.clear()
    data.set(f"{{{XSI_NS}}}type", "saml2:KeyInfoConfirmationDataType")
    etree.SubElement(data, q("ds", "KeyInfo"), nsmap={"ds": NS["ds"]})
    set_holder_of_key(assertion, hok)


def forge(
    genuine: etree._Element, *, keep_signature: bool, same_id: bool, name_id: str
) -> etree._Element:
    """A copy of the ``genuine`` assertion for signature wrapping: its subject's NameID
    changed, its Signature kept or dropped, its ID kept or changed."""
    forged = clone(genuine)
    if not keep_signature:
        forged.remove(forged.find(q("ds", "Signature")))
    if not same_id:
        forged.set("ID", "_forged")
    forged.find("saml2:Subject/saml2:NameID", NS).text = name_id
    return forged
