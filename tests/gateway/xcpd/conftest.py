"""The HL7 v3 schema fixtures, for answers and outbound requests."""

from tests.profiles.hl7v3_fixtures import assert_valid, hl7v3_schema  # noqa: F401 - by name
