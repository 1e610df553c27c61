"""XCPD: Cross-Community Patient Discovery (ITI-55), HL7 v3 messages and codec."""
