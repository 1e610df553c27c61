"""The checks behind ``profiles.xua.header``'s entry points (IHE XUA ITI-40, eHealth
Exchange): ``Verification(...).verify(security)`` -> (Principal, replay keys).

Order: structure first (which element each signature must cover), then who signed
(trust), then the signatures (signxml, strict), then claims read *only* from signxml's
``signed_xml`` (so comments and unsigned siblings never reach us), then the holder-of-key
Timestamp signature; the replay keys come back for the caller to consume last, so a
refused message never consumes an ID.

Subcodes: InvalidSecurity (header shape, DTD, size, stray/duplicate assertions or IDs,
unsigned, missing Timestamp, replay); FailedCheck (digest/signature, algorithms,
references, Timestamp not signed by the holder-of-key key); FailedAuthentication
(untrusted or expired signer, holder-of-key key not the partner's, wrong community or
audience); InvalidSecurityToken (formats, confirmations, attributes); MessageExpired.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidSignature, SignXMLException

from profiles.errors import WSSE_NS
from profiles.oid import bare_oid
from profiles.xua import structure
from profiles.xua.assertion import (
    CM_BEARER,
    CM_HOLDER_OF_KEY,
    SAMLID_VALUE_TYPE,
    AssertionFacts,
    Principal,
    name_ok,
    parse_datetime,
)
from profiles.xua.attributes import read_attributes, saml
from profiles.xua.faults import SecurityRefused, WsseFault, refuse
from profiles.xua.keys import (
    PublicKey,
    TrustAnchors,
    key_info_key,
    leaf_of,
    same_key,
    subject,
    unique,
)
from profiles.xua.policy import XuaPolicy
from profiles.xua.structure import NS

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_MAX_SIGNER_CANDIDATES = 4
# SAML token profile 1.1 names SAML 2.0 tokens by SAMLID; some stacks still use the 1.x name.
_SAML_IDS = {
    SAMLID_VALUE_TYPE,
    "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID",
}


@dataclass(frozen=True)
class Verification:
    """One header's checks at one instant (``profiles.xua.header`` runs them)."""

    now: datetime
    trust: TrustAnchors
    policy: XuaPolicy
    tls_cert: x509.Certificate | None
    partner_certs: tuple[x509.Certificate, ...]
    partner_hcid: str | None

    def verify(self, security: etree._Element) -> tuple[Principal, list[tuple[str, datetime]]]:
        policy = self.policy
        structure.check_header(security, policy)
        assertion = structure.the_assertion(security)
        assertion_id = assertion.get("ID", "")
        timestamp = structure.the_timestamp(security, policy)
        ts_id = timestamp.get(f"{{{structure.WSU_NS}}}Id") if timestamp is not None else None
        structure.check_ids(security, assertion_id, *([ts_id] if ts_id else []))

        signature = assertion.find(structure.SIGNATURE)
        method = structure.check_signature(
            signature, uri="#" + assertion_id, policy=policy, enveloped=True
        )
        signer, signed = self._verify_assertion_signature(assertion, signature)
        if signed.tag != structure.ASSERTION or signed.get("ID") != assertion_id:
            raise refuse(WsseFault.FAILED_CHECK, "signed data is not the assertion")

        issuer, issuer_format = self._issuer(signed)
        name_id, name_id_format = self._name_id(signed)
        hok_key = self._holder_of_key(signed)
        issued, expiry, one_time = self._conditions(signed)
        _check_authn(signed)
        try:
            principal = read_attributes(
                signed, policy, name_id=name_id, name_id_format=name_id_format
            )
        except ValueError as exc:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, str(exc)) from None
        if self.partner_hcid and bare_oid(self.partner_hcid) != bare_oid(
            principal.home_community_id
        ):
            raise refuse(
                WsseFault.FAILED_AUTHENTICATION,
                f"homeCommunityId {principal.home_community_id} is not the partner's",
            )
        hok_cert = self._bind(hok_key)

        keys: list[tuple[str, datetime]] = []
        if not policy.allow_assertion_reuse or one_time:
            token = hashlib.sha256(f"{issuer}\0{assertion_id}".encode()).hexdigest()
            keys.append((f"xua:assertion:{token}", expiry + policy.clock_skew))
        if timestamp is not None:
            keys.extend(self._verify_timestamp(security, timestamp, hok_cert, assertion_id))
        elif policy.allow_assertion_reuse:
            raise refuse(WsseFault.INVALID_SECURITY, "reuse allowed only with a Timestamp")

        facts = AssertionFacts(
            assertion_id=assertion_id,
            issuer=issuer,
            issuer_format=issuer_format,
            signer_subject=subject(signer),
            signature_method=method.value,
            issue_instant=issued,
            not_on_or_after=expiry,
        )
        return replace(principal, assertion=facts), keys

    # --- the assertion signature ------------------------------------------------------

    def _verify_assertion_signature(
        self, assertion: etree._Element, signature: etree._Element
    ) -> tuple[x509.Certificate, etree._Element]:
        candidates = self._signer_candidates(signature)
        failure: SecurityRefused | None = None
        for cert in candidates:
            try:
                return cert, self._signxml(assertion, cert, id_attribute="ID")
            except SecurityRefused as exc:
                failure = failure or exc
        assert failure is not None
        raise failure

    def _signer_candidates(self, signature: etree._Element) -> list[x509.Certificate]:
        """Trusted certificates that may have made ``signature``; never KeyInfo's say-so."""
        key_info = signature.find("ds:KeyInfo", NS)
        try:
            stated, certs = key_info_key(key_info) if key_info is not None else (None, [])
        except ValueError as exc:
            raise refuse(WsseFault.INVALID_SECURITY, f"assertion KeyInfo: {exc}") from None
        known = unique([*([self.tls_cert] if self.tls_cert else []), *self.partner_certs])
        chain: list[x509.Certificate] = []
        if certs:  # X509Data: the leaf must chain to the anchors or be pinned
            leaf = leaf_of(certs)
            chain = [c for c in certs if c is not leaf]
            candidates = [leaf]
        elif stated is not None:  # KeyValue (CONNECT): find the certificate we hold for it
            pool = unique([*known, *self.trust.pinned])
            candidates = [c for c in pool if same_key(c.public_key(), stated)][:1]
        else:  # no KeyInfo (Metriport): only the partner's own certificates may have signed
            candidates = known[:_MAX_SIGNER_CANDIDATES]
        errors = []
        trusted = []
        for cert in candidates:
            error = self.trust.trust_error(
                cert, at=self.now, chain=chain, also_pinned=self.partner_certs
            )
            (errors.append(error) if error else trusted.append(cert))
        if not trusted:
            why = "; ".join(errors) or "no known certificate holds the signing key"
            raise refuse(WsseFault.FAILED_AUTHENTICATION, f"assertion signer: {why}")
        return trusted

    def _signxml(
        self, data: etree._Element, cert: x509.Certificate, *, id_attribute: str
    ) -> etree._Element:
        config = SignatureConfiguration(
            require_x509=True,
            location="./",
            expect_references=1,
            signature_methods=structure.signature_methods(self.policy),
            digest_algorithms=structure.digest_algorithms(self.policy),
            verification_time=self.now,
        )
        try:
            result = XMLVerifier().verify(
                data,
                x509_cert=cert,
                expect_config=config,
                id_attribute=id_attribute,
                parser=_PARSER,
                # signxml's XML-DSig schema has a strict wildcard in CanonicalizationMethod
                # and so refuses CONNECT's exc-c14n InclusiveNamespaces PrefixList there;
                # structure.check_signature has already checked the shape we rely on.
                validate_schema=False,
            )
        except InvalidCertificate as exc:
            raise refuse(WsseFault.FAILED_AUTHENTICATION, f"certificate: {exc}") from None
        except (InvalidSignature, SignXMLException, etree.DocumentInvalid, ValueError) as exc:
            raise refuse(WsseFault.FAILED_CHECK, f"{type(exc).__name__}: {exc}") from None
        if result.signed_xml is None:  # type: ignore[union-attr]
            raise refuse(WsseFault.FAILED_CHECK, "signed data is not XML")
        return result.signed_xml  # type: ignore[union-attr]

    # --- claims, read from the signed assertion only ---------------------------------

    def _issuer(self, signed: etree._Element) -> tuple[str, str]:
        issuer = signed.find(saml("Issuer"))
        fmt = issuer.get("Format", "") if issuer is not None else ""
        value = (issuer.text or "").strip() if issuer is not None else ""
        if fmt not in self.policy.issuer_formats or not name_ok(value, fmt):
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, f"Issuer {fmt!r} {value!r}")
        return value, fmt

    def _name_id(self, signed: etree._Element) -> tuple[str, str]:
        ids = signed.findall("saml2:Subject/saml2:NameID", NS)
        if len(signed.findall(saml("Subject"))) != 1 or len(ids) != 1:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "Subject must hold one NameID")
        fmt, value = ids[0].get("Format", ""), (ids[0].text or "").strip()
        if fmt not in self.policy.name_id_formats or not name_ok(value, fmt):
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, f"NameID {fmt!r} {value!r}")
        return value, fmt

    def _holder_of_key(self, signed: etree._Element) -> PublicKey:
        confirmations = signed.findall("saml2:Subject/saml2:SubjectConfirmation", NS)
        methods = [c.get("Method") for c in confirmations]
        if CM_BEARER in methods and not self.policy.allow_bearer:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "bearer confirmation")
        hok = [c for c in confirmations if c.get("Method") == CM_HOLDER_OF_KEY]
        if len(hok) != 1:
            raise refuse(
                WsseFault.INVALID_SECURITY_TOKEN, f"{len(hok)} holder-of-key confirmations"
            )
        data = hok[0].find(saml("SubjectConfirmationData"))
        key_infos = data.findall("ds:KeyInfo", NS) if data is not None else []
        if len(key_infos) != 1:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "holder-of-key needs one KeyInfo")
        self._window(data, "SubjectConfirmationData")
        try:
            key, _ = key_info_key(key_infos[0])
        except ValueError as exc:
            raise refuse(
                WsseFault.INVALID_SECURITY_TOKEN, f"holder-of-key KeyInfo: {exc}"
            ) from None
        if key is None:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "holder-of-key KeyInfo holds no key")
        return key

    def _conditions(self, signed: etree._Element) -> tuple[datetime, datetime, bool]:
        """IssueInstant, when the assertion stops being valid, and OneTimeUse."""
        skew = self.policy.clock_skew
        issued = _time(signed.get("IssueInstant"), "IssueInstant")
        if issued > self.now + skew:
            raise refuse(WsseFault.MESSAGE_EXPIRED, "IssueInstant in the future")
        conditions = signed.findall(saml("Conditions"))
        if len(conditions) > 1:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "more than one Conditions")
        cond = conditions[0] if conditions else None
        expiry = self._window(cond, "Conditions") if cond is not None else None
        if expiry is None:
            expiry = issued + self.policy.max_assertion_age
            if self.now - skew >= expiry:
                raise refuse(WsseFault.MESSAGE_EXPIRED, "assertion without NotOnOrAfter too old")
        if self.policy.audiences:
            restrictions = cond.findall(saml("AudienceRestriction")) if cond is not None else []
            if not restrictions or any(
                not {(a.text or "").strip() for a in r.findall(saml("Audience"))}
                & self.policy.audiences
                for r in restrictions
            ):
                raise refuse(WsseFault.FAILED_AUTHENTICATION, "audience is not this gateway")
        one_time = cond is not None and cond.find(saml("OneTimeUse")) is not None
        return issued, expiry, one_time

    def _window(self, el: etree._Element | None, what: str) -> datetime | None:
        """Check NotBefore/NotOnOrAfter with skew; return NotOnOrAfter if present."""
        if el is None:
            return None
        skew = self.policy.clock_skew
        not_before = el.get("NotBefore")
        if not_before is not None and _time(not_before, what) > self.now + skew:
            raise refuse(WsseFault.MESSAGE_EXPIRED, f"{what} NotBefore in the future")
        if el.get("NotOnOrAfter") is None:
            return None
        not_after = _time(el.get("NotOnOrAfter"), what)
        if self.now - skew >= not_after:
            raise refuse(WsseFault.MESSAGE_EXPIRED, f"{what} NotOnOrAfter passed")
        return not_after

    # --- holder-of-key: the key, the partner, the Timestamp signature -----------------

    def _bind(self, hok_key: PublicKey) -> x509.Certificate:
        for cert in (self.tls_cert, *self.partner_certs):
            if cert is not None and same_key(cert.public_key(), hok_key):
                return cert
        raise refuse(
            WsseFault.FAILED_AUTHENTICATION,
            "holder-of-key key is neither the TLS client key nor a registered partner key",
        )

    def _verify_timestamp(
        self,
        security: etree._Element,
        timestamp: etree._Element,
        hok_cert: x509.Certificate,
        assertion_id: str,
    ) -> list[tuple[str, datetime]]:
        ts_id = timestamp.get(f"{{{structure.WSU_NS}}}Id")
        signatures = security.findall(structure.SIGNATURE)
        if not ts_id or len(signatures) != 1:
            raise refuse(WsseFault.INVALID_SECURITY, "Timestamp needs one message signature")
        signature = signatures[0]
        structure.check_signature(signature, uri="#" + ts_id, policy=self.policy, enveloped=False)
        for ref in signature.findall("ds:KeyInfo/wsse:SecurityTokenReference/*", NS):
            named = (ref.text or "").strip() if ref.get("ValueType") in _SAML_IDS else None
            if ref.get("URI") is not None:
                named = ref.get("URI", "").removeprefix("#")
            if named != assertion_id:
                raise refuse(WsseFault.FAILED_CHECK, "message signature names another token")
        # Only the Timestamp and its signature go to signxml: serializing the whole header
        # (assertion included) again cost more than the RSA check. tostring() carries the
        # in-scope namespace declarations, so exclusive c14n (PrefixLists too) is unchanged.
        alone = etree.fromstring(
            b"<wsse:Security xmlns:wsse='%s'>%s%s</wsse:Security>"
            % (
                WSSE_NS.encode(),
                etree.tostring(timestamp, with_tail=False),
                etree.tostring(signature, with_tail=False),
            ),
            _PARSER,
        )
        signed = self._signxml(alone, hok_cert, id_attribute="Id")
        if signed.tag != structure.TIMESTAMP or signed.get(f"{{{structure.WSU_NS}}}Id") != ts_id:
            raise refuse(WsseFault.FAILED_CHECK, "message signature does not cover the Timestamp")
        created_el = signed.find("wsu:Created", NS)
        created = _time(created_el.text if created_el is not None else None, "Created")
        expires_el = signed.find("wsu:Expires", NS)
        skew, now = self.policy.clock_skew, self.now
        if created > now + skew:
            raise refuse(WsseFault.MESSAGE_EXPIRED, "Timestamp Created in the future")
        if now - created > self.policy.timestamp_max_age + skew:
            raise refuse(WsseFault.MESSAGE_EXPIRED, "Timestamp is stale")
        if expires_el is not None:
            expires = _time(expires_el.text, "Expires")
            if expires < created or now - skew >= expires:
                raise refuse(WsseFault.MESSAGE_EXPIRED, "Timestamp expired")
        if not self.policy.allow_assertion_reuse:
            return []
        value = signature.findtext("ds:SignatureValue", "", NS)
        token = hashlib.sha256("".join(value.split()).encode()).hexdigest()
        forget = created + self.policy.timestamp_max_age + 2 * skew
        return [(f"xua:message:{token}", forget)]


def _check_authn(signed: etree._Element) -> None:
    for statement in signed.findall(saml("AuthnStatement")):
        _time(statement.get("AuthnInstant"), "AuthnInstant")
        ref = statement.findtext("saml2:AuthnContext/saml2:AuthnContextClassRef", None, NS)
        decl = statement.find("saml2:AuthnContext/saml2:AuthnContextDeclRef", NS)
        if not (ref or "").strip() and decl is None:
            raise refuse(WsseFault.INVALID_SECURITY_TOKEN, "AuthnStatement without AuthnContext")


def _time(value: str | None, what: str) -> datetime:
    try:
        return parse_datetime(value)
    except ValueError:
        raise refuse(WsseFault.INVALID_SECURITY_TOKEN, f"{what}: bad dateTime {value!r}") from None
