"""The attribute profile codec: AttributeStatements <-> ``Principal`` fields.

Reading is strict: a required attribute missing, repeated or malformed is a ValueError
(the verifier turns it into ``wsse:InvalidSecurityToken``). Writing follows CONNECT's
order and encoding, since CONNECT is what most eHealth Exchange peers were tested with.
"""

from __future__ import annotations

from lxml import etree

from profiles.oid import bare_oid
from profiles.xua.assertion import (
    ACTION_RWEDC,
    ATTR_NAME_FORMAT_URI,
    BPPC_DOCID,
    HL7_NS,
    HOME_COMMUNITY_ID,
    NHIN_EVIDENCE_NAME_FORMAT,
    NPI,
    ORGANIZATION,
    ORGANIZATION_ID,
    PURPOSE_OF_USE,
    RESOURCE_ID,
    SAML_NS,
    SUBJECT_ID,
    SUBJECT_ROLE,
    XSI_NS,
    XUA_ACP,
    AuthzDecision,
    Code,
    Principal,
    is_oid,
    oid_uri,
)
from profiles.xua.policy import XuaPolicy

_SINGLE = frozenset(
    {
        SUBJECT_ID,
        ORGANIZATION,
        ORGANIZATION_ID,
        HOME_COMMUNITY_ID,
        SUBJECT_ROLE,
        PURPOSE_OF_USE,
        RESOURCE_ID,
        NPI,
        BPPC_DOCID,
    }
)
_KNOWN = _SINGLE | {XUA_ACP}
DECISIONS = frozenset({"Permit", "Deny", "Indeterminate"})


def saml(local: str) -> str:
    return f"{{{SAML_NS}}}{local}"


def hl7(local: str) -> str:
    return f"{{{HL7_NS}}}{local}"


# --- reading ----------------------------------------------------------------------------


def read_attributes(
    assertion: etree._Element, policy: XuaPolicy, *, name_id: str, name_id_format: str
) -> Principal:
    """The Principal an (already verified) assertion describes."""
    found = _collect(assertion)
    return Principal(
        subject_id=_text(found, SUBJECT_ID, collapse=True),
        organization=_text(found, ORGANIZATION, collapse=True),
        organization_id=oid_uri(_text(found, ORGANIZATION_ID)),
        home_community_id=_home_community_id(_text(found, HOME_COMMUNITY_ID)),
        role=_role(found, policy),
        purpose_of_use=_purpose(found, policy),
        name_id=name_id,
        name_id_format=name_id_format,
        resource_id=_text(found, RESOURCE_ID, required=False) or None,
        npi=_text(found, NPI, required=False) or None,
        consent_policies=tuple(_plain(v, XUA_ACP) for v in found.get(XUA_ACP, [])),
        consent_document_id=_text(found, BPPC_DOCID, required=False) or None,
        authz=_authz(assertion),
    )


def _collect(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for statement in assertion.findall(saml("AttributeStatement")):
        for attr in statement.findall(saml("Attribute")):
            name = (attr.get("Name") or "").strip()
            if not name:
                raise ValueError("Attribute without a Name")
            if name not in _KNOWN:
                continue
            if attr.get("NameFormat") not in (None, ATTR_NAME_FORMAT_URI):
                raise ValueError(f"{name}: NameFormat {attr.get('NameFormat')!r}")
            if name in found and name in _SINGLE:
                raise ValueError(f"{name} appears more than once")
            found.setdefault(name, []).extend(attr.findall(saml("AttributeValue")))
    return found


def _plain(value: etree._Element, name: str, *, collapse: bool = False) -> str:
    if len(value):
        raise ValueError(f"{name}: expected text, found an element")
    text = value.text or ""
    return " ".join(text.split()) if collapse else text.strip()


def _one(
    found: dict[str, list[etree._Element]], name: str, required: bool
) -> etree._Element | None:
    values = found.get(name, [])
    if len(values) > 1:
        raise ValueError(f"{name} has {len(values)} values")
    if not values and required:
        raise ValueError(f"{name} is missing")
    return values[0] if values else None


def _text(
    found: dict[str, list[etree._Element]], name: str, *, required: bool = True, collapse=False
) -> str:
    value = _one(found, name, required)
    text = _plain(value, name, collapse=collapse) if value is not None else ""
    if required and not text:
        raise ValueError(f"{name} is empty")
    return text


def _home_community_id(value: str) -> str:
    if not is_oid(bare_oid(value)):
        raise ValueError("homeCommunityId is not an OID")
    return oid_uri(value)


def _code(found: dict[str, list[etree._Element]], name: str, tags: set[str]) -> Code:
    value = _one(found, name, True)
    children = [c for c in value if isinstance(c.tag, str)]  # type: ignore[union-attr]
    if len(children) != 1 or children[0].tag not in tags:
        raise ValueError(f"{name}: expected one of {sorted(tags)}")
    el = children[0]
    code = (el.get("code") or "").strip()
    system = bare_oid(el.get("codeSystem") or "")
    if not code or not system:
        raise ValueError(f"{name}: code and codeSystem are required")
    return Code(
        code,
        system,
        (el.get("codeSystemName") or "").strip(),
        (el.get("displayName") or "").strip(),
    )


def _role(found: dict[str, list[etree._Element]], policy: XuaPolicy) -> Code:
    role = _code(found, SUBJECT_ROLE, {hl7("Role")})
    if role.code_system != policy.role_code_system:
        raise ValueError(f"role code system {role.code_system}")
    if policy.role_codes is not None:
        if role.code not in policy.role_codes:
            raise ValueError(f"role {role.code} is not allowed")
    elif not (role.code.isdigit() and role.code.isascii() and 6 <= len(role.code) <= 18):
        raise ValueError(f"role {role.code!r} is not a SNOMED CT concept id")
    return role


def _purpose(found: dict[str, list[etree._Element]], policy: XuaPolicy) -> Code:
    tags = {hl7("PurposeOfUse")} | (
        {hl7("PurposeForUse")} if policy.accept_purpose_for_use else set()
    )
    purpose = _code(found, PURPOSE_OF_USE, tags)
    if purpose.code_system != policy.purpose_code_system:
        raise ValueError(f"purpose of use code system {purpose.code_system}")
    if purpose.code not in policy.purpose_codes:
        raise ValueError(f"purpose of use {purpose.code} is not allowed")
    return purpose


def _authz(assertion: etree._Element) -> AuthzDecision | None:
    statements = assertion.findall(saml("AuthzDecisionStatement"))
    if not statements:
        return None
    if len(statements) > 1:
        raise ValueError("more than one AuthzDecisionStatement")
    st = statements[0]
    decision = st.get("Decision", "")
    if decision not in DECISIONS:
        raise ValueError(f"AuthzDecisionStatement Decision {decision!r}")
    evidence: dict[str, list[str]] = {}
    for attr in st.iterfind(f"{saml('Evidence')}/{saml('Assertion')}//{saml('Attribute')}"):
        values = [" ".join((v.text or "").split()) for v in attr.findall(saml("AttributeValue"))]
        evidence.setdefault(attr.get("Name", ""), []).extend(v for v in values if v)
    return AuthzDecision(
        decision=decision,
        resource=(st.get("Resource") or "").strip(),
        actions=tuple((a.text or "").strip() for a in st.findall(saml("Action"))),
        access_consent_policies=tuple(evidence.get("AccessConsentPolicy", ())),
        instance_access_consent_policies=tuple(evidence.get("InstanceAccessConsentPolicy", ())),
    )


# --- writing ----------------------------------------------------------------------------


def attribute_statement(
    principal: Principal, *, purpose_element: str = "PurposeOfUse", oid_prefix: bool = True
) -> etree._Element:
    """One AttributeStatement holding every attribute the Principal has."""

    def oid(value: str) -> str:
        return oid_uri(value) if oid_prefix else bare_oid(value)

    st = etree.Element(saml("AttributeStatement"), nsmap={"saml2": SAML_NS})
    _add_text(st, SUBJECT_ID, principal.subject_id)
    _add_text(st, ORGANIZATION, principal.organization)
    _add_text(st, ORGANIZATION_ID, oid(principal.organization_id))
    _add_text(st, HOME_COMMUNITY_ID, oid(principal.home_community_id))
    _add_code(st, SUBJECT_ROLE, "Role", principal.role)
    _add_code(st, PURPOSE_OF_USE, purpose_element, principal.purpose_of_use)
    if principal.resource_id:
        _add_text(st, RESOURCE_ID, principal.resource_id)
    if principal.npi:
        _add_text(st, NPI, principal.npi)
    if principal.consent_policies:
        _add_text(st, XUA_ACP, *principal.consent_policies)
    if principal.consent_document_id:
        _add_text(st, BPPC_DOCID, principal.consent_document_id)
    return st


def _attribute(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, saml("Attribute"), Name=name, NameFormat=ATTR_NAME_FORMAT_URI)


def _add_text(parent: etree._Element, name: str, *values: str) -> None:
    attr = _attribute(parent, name)
    for value in values:
        etree.SubElement(attr, saml("AttributeValue")).text = value


def _add_code(parent: etree._Element, name: str, local: str, code: Code) -> None:
    value = etree.SubElement(_attribute(parent, name), saml("AttributeValue"))
    el = etree.SubElement(value, hl7(local), nsmap={"hl7": HL7_NS, "xsi": XSI_NS})
    el.set(f"{{{XSI_NS}}}type", "hl7:CE")
    el.set("code", code.code)
    el.set("codeSystem", code.code_system)
    if code.code_system_name:
        el.set("codeSystemName", code.code_system_name)
    if code.display_name:
        el.set("displayName", code.display_name)


def authz_statement(
    authz: AuthzDecision, *, issuer: etree._Element, evidence_id: str, now: str
) -> etree._Element:
    """The AuthzDecisionStatement with its Evidence assertion (CONNECT's shape)."""
    st = etree.Element(
        saml("AuthzDecisionStatement"), Decision=authz.decision, Resource=authz.resource
    )
    for action in authz.actions:
        etree.SubElement(st, saml("Action"), Namespace=ACTION_RWEDC).text = action
    evidence = etree.SubElement(
        etree.SubElement(st, saml("Evidence")),
        saml("Assertion"),
        ID=evidence_id,
        IssueInstant=now,
        Version="2.0",
    )
    evidence.append(issuer)
    attrs = etree.SubElement(evidence, saml("AttributeStatement"))
    for name, values in (
        ("AccessConsentPolicy", authz.access_consent_policies),
        ("InstanceAccessConsentPolicy", authz.instance_access_consent_policies),
    ):
        if values:
            attr = etree.SubElement(
                attrs, saml("Attribute"), Name=name, NameFormat=NHIN_EVIDENCE_NAME_FORMAT
            )
            for v in values:
                etree.SubElement(attr, saml("AttributeValue")).text = v
    if not len(attrs):
        evidence.remove(attrs)
    return st
