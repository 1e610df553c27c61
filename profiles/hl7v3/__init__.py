"""What XCPD (ITI-55) and PIXv3 (ITI-44, ITI-45) share: HL7 v3 data types, the
transmission wrapper and acknowledgement, controlActProcess query pieces, the
patient role, and the Hl7v3Error family that becomes an AE acknowledgement.

Modules: ``datatypes`` (models) and ``codec`` (their elements), ``wrapper``
(MCCI wrapper, acknowledgement), ``control`` (queryAck, detected issues),
``patient``, ``ack`` (MCCI_IN000002UV01), ``errors``, ``xmlutil``.
"""

from profiles.hl7v3.control import DetectedIssue, IssueError, QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, AddressPart, Code, NamePart, gender
from profiles.hl7v3.errors import (
    AckDetailCode,
    Hl7v3Error,
    Hl7v3InternalError,
    Hl7v3NotSupported,
    Hl7v3SyntaxError,
    MessageErrorCode,
    UnknownKeyIdentifier,
)
from profiles.hl7v3.patient import OtherId, Patient, Person
from profiles.hl7v3.wrapper import (
    Acknowledgement,
    AcknowledgementDetail,
    AckType,
    DetailType,
    Device,
    TransmissionWrapper,
)

__all__ = [
    "AD", "II", "PN", "TEL", "TS", "AddressPart", "Code", "NamePart", "gender",
    "AckDetailCode", "Hl7v3Error", "Hl7v3InternalError", "Hl7v3NotSupported", "Hl7v3SyntaxError",
    "MessageErrorCode", "UnknownKeyIdentifier",
    "DetectedIssue", "IssueError", "QueryResponseCode", "RequestedAttribute",
    "OtherId", "Patient", "Person",
    "Acknowledgement", "AcknowledgementDetail", "AckType", "DetailType", "Device",
    "TransmissionWrapper",
]
