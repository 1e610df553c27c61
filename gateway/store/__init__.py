"""Storage: the database (``db``), its migrations (``migrate``, ``migrations/``), the
tables (``models``), and the content-addressed document store (``blobs``, ``blobindex``)."""
