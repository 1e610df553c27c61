"""The one way XUA refuses a message: a SOAP 1.2 Sender fault with a WS-Security subcode.

The peer sees only the subcode and the fixed fault string the WS-Security 1.1 spec gives
for it (section 12), so a refusal tells an attacker which class of check failed and
nothing more. What actually failed goes into ``internal_reason``, for the log and the
audit record only; the gateway must never copy it into the fault it sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from profiles.errors import WSSE_NS, SoapFault


class WsseFault(StrEnum):
    """The WS-Security fault subcodes this package raises."""

    INVALID_SECURITY = "InvalidSecurity"  # the Security header itself is malformed
    INVALID_SECURITY_TOKEN = "InvalidSecurityToken"  # the assertion's content is unacceptable
    FAILED_AUTHENTICATION = "FailedAuthentication"  # signer or holder-of-key not trusted
    FAILED_CHECK = "FailedCheck"  # a signature or digest does not verify, or bad algorithm
    MESSAGE_EXPIRED = "MessageExpired"  # outside Conditions or Timestamp validity

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {
    WsseFault.INVALID_SECURITY: "An error was discovered processing the <wsse:Security> header",
    WsseFault.INVALID_SECURITY_TOKEN: "An invalid security token was provided",
    WsseFault.FAILED_AUTHENTICATION: "The security token could not be authenticated or authorized",
    WsseFault.FAILED_CHECK: "The signature or decryption was invalid",
    WsseFault.MESSAGE_EXPIRED: "The message has expired",
}


@dataclass
class SecurityRefused(SoapFault):
    """A refused Security header. ``reason`` goes to the peer; ``internal_reason`` never does."""

    internal_reason: str = ""

    @property
    def wsse_fault(self) -> WsseFault:
        return WsseFault(self.subcodes[0][1])


def refuse(fault: WsseFault, internal_reason: str) -> SecurityRefused:
    """Build (not raise) the refusal for ``fault``; say what failed in ``internal_reason``."""
    return SecurityRefused(
        "Sender",
        fault.reason,
        [(WSSE_NS, fault.value)],
        internal_reason=internal_reason,
    )
