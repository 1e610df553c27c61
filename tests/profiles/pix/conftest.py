"""The HL7 v3 fixtures (schemas, samples) shared with the sibling codec test folders."""

from tests.profiles.hl7v3_fixtures import (  # noqa: F401 - fixtures, found by name
    assert_valid,
    hl7_message,
    hl7v3_schema,
    samples_carrying,
)
