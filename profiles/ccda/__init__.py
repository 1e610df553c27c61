"""C-CDA documents: XDS metadata from the CDA header (``extract``), CDA R2 schema and
C-CDA Schematron findings (``validate``), safe HTML rendering (``render``).

Sans-IO like the rest of profiles/: bytes and elements in, dataclasses and bytes out.
"""
