"""The XDS.b document registry on SQLAlchemy: tables, the stored queries as SQL, the
``SqlRegistry`` adapter behind ``profiles.xds.ports`` and the ``documents`` CLI."""
