"""PIX manager: HL7 v2 (ITI-8/9) and HL7 v3 (ITI-44/45) messages and transactions."""
