"""C-CDA on the gateway side: ``importer`` (``documents import`` of CDA files, the
``documents show`` rendering) and ``schematron`` (the optional C-CDA R2.1
Schematron through saxonche). The document logic itself is ``profiles.ccda``."""
