"""Structural checks made before any cryptography: they decide *which* element a
signature must cover, so that signature wrapping has nowhere to hide.

Every function here raises a ``SecurityRefused``; none of them trusts what it reads,
and claims are never taken from this unverified tree (see ``verify.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from profiles.errors import WSSE_NS
from profiles.xua.assertion import DS_NS, ENVELOPED, EXC_C14N, SAML1_NS, SAML_NS, WSU_NS
from profiles.xua.faults import WsseFault, refuse
from profiles.xua.policy import XuaPolicy

NS = {"ds": DS_NS, "saml2": SAML_NS, "wsse": WSSE_NS, "wsu": WSU_NS}
SECURITY = f"{{{WSSE_NS}}}Security"
ASSERTION = f"{{{SAML_NS}}}Assertion"
SIGNATURE = f"{{{DS_NS}}}Signature"
TIMESTAMP = f"{{{WSU_NS}}}Timestamp"

STRONG_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
STRONG_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
# XPath for every attribute a signature reference could resolve to (signxml matches
# Id, ID, id and xml:id by local name, in any namespace).
_ID_ATTRS = "@*[local-name()='ID' or local-name()='Id' or local-name()='id']"
_REFERENCED_IDS = etree.XPath(f"//{_ID_ATTRS}[. = $a or . = $b]")
_ALL_IDS = etree.XPath(f"descendant-or-self::*/{_ID_ATTRS}")
_COUNT_ELEMENTS = etree.XPath("count(descendant-or-self::*)")


@functools.cache
def _deeper_than(depth: int) -> etree.XPath:
    """True when an element sits more than ``depth`` levels deep (the header is level 1)."""
    return etree.XPath("boolean(" + "*/" * (depth - 1) + "*)")


def signature_methods(policy: XuaPolicy) -> frozenset[SignatureMethod]:
    return STRONG_METHODS | ({SignatureMethod.RSA_SHA1} if policy.allow_sha1 else set())


def digest_algorithms(policy: XuaPolicy) -> frozenset[DigestAlgorithm]:
    return STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if policy.allow_sha1 else set())


def check_header(security: etree._Element, policy: XuaPolicy) -> None:
    """The element is the one wsse:Security header, within size limits, with no DTD."""
    if security.tag != SECURITY:
        raise refuse(WsseFault.INVALID_SECURITY, f"not a wsse:Security header: {security.tag}")
    docinfo = security.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype:
        raise refuse(WsseFault.INVALID_SECURITY, "document has a DOCTYPE")
    # Aggregates computed in C: a Python-level walk cost a quarter of a verification.
    elements = int(_COUNT_ELEMENTS(security))
    too_deep = _deeper_than(policy.max_header_depth)(security)
    size = len(etree.tostring(security, with_tail=False))
    if elements > policy.max_header_elements or too_deep or size > policy.max_header_bytes:
        raise refuse(
            WsseFault.INVALID_SECURITY,
            f"header over limits ({elements} elements, {size} bytes, too deep: {too_deep})",
        )
    if next(security.iter(etree.Entity), None) is not None:
        raise refuse(WsseFault.INVALID_SECURITY, "entity reference in the header")
    root = security.getroottree().getroot()
    if sum(1 for _ in root.iter(SECURITY)) != 1:
        raise refuse(WsseFault.INVALID_SECURITY, "more than one wsse:Security header")


def the_assertion(security: etree._Element) -> etree._Element:
    """The single SAML 2.0 Assertion of the header; stray or nested ones are refused.

    Assertions may appear inside it only as AuthzDecisionStatement Evidence (CONNECT's
    consent evidence). An Advice anywhere, a second assertion in the message, a SAML 1.x
    or an encrypted assertion, or a signature anywhere but the assertion's own, all refuse.
    """
    direct = security.findall(ASSERTION)
    if len(direct) != 1:
        raise refuse(WsseFault.INVALID_SECURITY, f"{len(direct)} SAML 2.0 assertions in Security")
    assertion = direct[0]
    if security.find(f"{{{SAML1_NS}}}Assertion") is not None:
        raise refuse(WsseFault.INVALID_SECURITY, "SAML 1.x assertion in Security")
    if security.find(f"{{{SAML_NS}}}EncryptedAssertion") is not None:
        raise refuse(WsseFault.INVALID_SECURITY, "encrypted assertion in Security")
    if next(assertion.iter(f"{{{SAML_NS}}}Advice"), None) is not None:
        raise refuse(WsseFault.INVALID_SECURITY, "assertion carries an Advice")
    evidence = assertion.findall("saml2:AuthzDecisionStatement/saml2:Evidence/saml2:Assertion", NS)
    root = security.getroottree().getroot()
    total = sum(1 for _ in root.iter(ASSERTION))
    if total != 1 + len(evidence):
        raise refuse(WsseFault.INVALID_SECURITY, f"{total} assertions in the message")
    signatures = list(assertion.iter(SIGNATURE))
    if not signatures:
        raise refuse(WsseFault.INVALID_SECURITY, "assertion is not signed")
    if len(signatures) != 1 or signatures[0].getparent() is not assertion:
        raise refuse(WsseFault.INVALID_SECURITY, "signature is not a direct child of the assertion")
    children = [c for c in assertion if isinstance(c.tag, str)]
    if (
        len(children) < 2
        or children[0].tag != f"{{{SAML_NS}}}Issuer"
        or children[1] is not (signatures[0])
    ):
        raise refuse(WsseFault.INVALID_SECURITY, "Signature does not follow Issuer")
    if assertion.get("Version") != "2.0" or not (assertion.get("ID") or "").strip():
        raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "assertion Version/ID")
    return assertion


def the_timestamp(security: etree._Element, policy: XuaPolicy) -> etree._Element | None:
    found = security.findall(TIMESTAMP)
    if len(found) > 1:
        raise refuse(WsseFault.INVALID_SECURITY, "more than one Timestamp")
    if not found and policy.require_timestamp:
        raise refuse(WsseFault.INVALID_SECURITY, "no Timestamp")
    return found[0] if found else None


def check_ids(security: etree._Element, *referenced: str) -> None:
    # ``referenced``: the assertion ID and, when there is one, the Timestamp's wsu:Id.
    """IDs are unique within the header, and each referenced one within the message."""
    values = [str(v) for v in _ALL_IDS(security)]
    if len(values) != len(set(values)):
        raise refuse(WsseFault.INVALID_SECURITY, "duplicate ID in the Security header")
    root = security.getroottree().getroot()
    found = [str(v) for v in _REFERENCED_IDS(root, a=referenced[0], b=referenced[-1])]
    for value in referenced:
        if found.count(value) != 1:
            raise refuse(WsseFault.INVALID_SECURITY, f"ID {value!r} is not unique in the message")


def check_signature(
    signature: etree._Element, *, uri: str, policy: XuaPolicy, enveloped: bool
) -> SignatureMethod:
    """One Reference to exactly ``uri``, exclusive c14n, allowed algorithms and transforms."""
    signed_info = signature.find("ds:SignedInfo", NS)
    if signed_info is None:
        raise refuse(WsseFault.INVALID_SECURITY, "Signature without SignedInfo")
    c14n = signed_info.find("ds:CanonicalizationMethod", NS)
    if c14n is None or c14n.get("Algorithm") != EXC_C14N:
        raise refuse(WsseFault.FAILED_CHECK, "SignedInfo is not exclusive c14n")
    method_el = signed_info.find("ds:SignatureMethod", NS)
    try:
        method = SignatureMethod(method_el.get("Algorithm") if method_el is not None else "")
    except ValueError:
        raise refuse(WsseFault.FAILED_CHECK, "unknown SignatureMethod") from None
    if method not in signature_methods(policy):
        raise refuse(WsseFault.FAILED_CHECK, f"SignatureMethod {method.name} not allowed")
    references = signed_info.findall("ds:Reference", NS)
    if len(references) != 1:
        raise refuse(WsseFault.FAILED_CHECK, f"{len(references)} References")
    reference = references[0]
    if reference.get("URI") != uri:
        raise refuse(
            WsseFault.FAILED_CHECK, f"Reference URI {reference.get('URI')!r}, want {uri!r}"
        )
    transforms = [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)]
    if (
        EXC_C14N not in transforms
        or not set(transforms) <= {EXC_C14N, ENVELOPED}
        or (enveloped and ENVELOPED not in transforms)
    ):
        raise refuse(WsseFault.FAILED_CHECK, f"Reference transforms {transforms}")
    digest_el = reference.find("ds:DigestMethod", NS)
    try:
        digest = DigestAlgorithm(digest_el.get("Algorithm") if digest_el is not None else "")
    except ValueError:
        raise refuse(WsseFault.FAILED_CHECK, "unknown DigestMethod") from None
    if digest not in digest_algorithms(policy):
        raise refuse(WsseFault.FAILED_CHECK, f"DigestMethod {digest.name} not allowed")
    return method


def security_header(headers: Sequence[etree._Element], *, required: bool) -> etree._Element | None:
    """Pick the wsse:Security element out of the SOAP headers (``Envelope.headers``).

    More than one is refused; none is refused when ``required`` (partner endpoints),
    else None (local actors may send no assertion).
    """
    found = [h for h in headers if h.tag == SECURITY]
    if len(found) > 1:
        raise refuse(WsseFault.INVALID_SECURITY, f"{len(found)} wsse:Security headers")
    if not found and required:
        raise refuse(WsseFault.INVALID_SECURITY, "no wsse:Security header")
    return found[0] if found else None
