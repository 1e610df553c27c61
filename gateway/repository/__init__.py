"""The XDS.b Document Repository and XDR Document Recipient, gateway side.

``models`` (the ``repository_documents`` table), ``store`` (``SqlRepository``:
the ``profiles.xds.repository_ports.DocumentRepository`` port on the blob store
and the database) and ``cli`` (``ihe-gateway documents import``).
"""
