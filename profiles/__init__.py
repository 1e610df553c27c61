"""The sans-IO protocol core: message models, codecs and transaction logic.

Nothing in this package imports Flask, SQLAlchemy, zeep, requests/httpx, sockets
or the ``gateway`` package, and nothing opens a file; ``tests/test_layers.py``
enforces it. Transactions are tested by pushing bytes and dataclasses.
"""
