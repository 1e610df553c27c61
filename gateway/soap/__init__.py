"""SOAP transport: envelopes, WS-Addressing, MTOM/XOP and faults (bytes in, bytes out)."""
