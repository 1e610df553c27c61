"""IHE XUA (ITI-40) with the eHealth Exchange / NHIN Authorization Framework profile.

Inbound: ``verify_security_header`` checks the ``wsse:Security`` header element the
SOAP layer parsed (``Envelope.headers``) and returns the requesting ``Principal`` or
raises ``SecurityRefused``, a SOAP 1.2 Sender fault with a WS-Security subcode whose
``internal_reason`` is for the log and audit only. Outbound: ``build_security_header``
makes the header our initiating gateway sends. No I/O: keys, certificates and trust
anchors come in as objects; the clock and the replay cache are ports.

Modules: assertion (names, models), attributes (attribute profile codec), keys (trust
and KeyInfo), structure (anti-wrapping checks), policy, faults, verify, issue.
"""

from profiles.xua.assertion import AssertionFacts, AuthzDecision, Code, Principal
from profiles.xua.faults import SecurityRefused, WsseFault, refuse
from profiles.xua.header import Checked, check_security_header, verify_security_header
from profiles.xua.issue import (
    AssertionCache,
    IssuedAssertion,
    IssuePolicy,
    SigningCredentials,
    build_security_header,
    issue_assertion,
)
from profiles.xua.keys import TrustAnchors
from profiles.xua.policy import ReplayCache, ReplayKey, XuaPolicy, replayed
from profiles.xua.structure import security_header

__all__ = [
    "AssertionCache",
    "AssertionFacts",
    "AuthzDecision",
    "Checked",
    "Code",
    "IssuePolicy",
    "IssuedAssertion",
    "Principal",
    "ReplayCache",
    "ReplayKey",
    "SecurityRefused",
    "SigningCredentials",
    "TrustAnchors",
    "WsseFault",
    "XuaPolicy",
    "build_security_header",
    "check_security_header",
    "issue_assertion",
    "refuse",
    "replayed",
    "security_header",
    "verify_security_header",
]
