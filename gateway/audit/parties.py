"""Who a request's audit record names besides the transaction's endpoints: us, as the
audit source, and the human requestor, from the verified XUA principal."""

from __future__ import annotations

from gateway.config import Config
from profiles.atna.codes import AuditSourceType
from profiles.atna.events import HumanRequestor
from profiles.atna.message import AuditSourceIdentification, CodedValue


def audit_source(config: Config) -> AuditSourceIdentification:
    """We report as our home community (as CONNECT does), on this host's site."""
    return AuditSourceIdentification(
        audit_source_id=config.community.home_community_id,
        enterprise_site_id=config.community.name or None,
        type_codes=(AuditSourceType.APPLICATION_SERVER,),
    )


def human_requestor(principal) -> HumanRequestor | None:
    """The verified XUA principal as the audit record's human requestor."""
    if principal is None:
        return None
    facts = principal.assertion

    def coded(code) -> CodedValue:
        return CodedValue(
            code.code, code.code_system_name or code.code_system, code.display_name or code.code
        )

    return HumanRequestor(
        subject_id=principal.subject_id,
        name_id=principal.name_id or None,
        issuer=facts.issuer if facts else None,
        organization=principal.organization,
        organization_id=principal.organization_id,
        roles=(coded(principal.role),),
        purposes_of_use=(coded(principal.purpose_of_use),),
    )
