"""The ITI-55 HL7 v3 codec in one place: ``parse_x(el) -> X`` and ``x_to_xml(X) -> el``.

Requests (PRPA_IN201305UV02) live in ``query``, responses (PRPA_IN201306UV02)
in ``response``, the models in ``models``; this module only gathers them for
``iti55.py`` and the initiating gateway.
"""

from profiles.xcpd.models import (
    PRPA_IN201305UV02,
    PRPA_IN201306UV02,
    PatientDiscoveryQuery,
    PatientDiscoveryResponse,
    PatientMatch,
    QueryParameters,
    ResponsePriority,
)
from profiles.xcpd.query import parse_patient_discovery_query, patient_discovery_query_to_xml
from profiles.xcpd.response import (
    error_acknowledgement,
    parse_patient_discovery_response,
    patient_discovery_response_to_xml,
)

__all__ = [
    "PRPA_IN201305UV02", "PRPA_IN201306UV02", "PatientDiscoveryQuery",
    "PatientDiscoveryResponse", "PatientMatch", "QueryParameters", "ResponsePriority",
    "parse_patient_discovery_query", "patient_discovery_query_to_xml",
    "parse_patient_discovery_response", "patient_discovery_response_to_xml",
    "error_acknowledgement",
]
