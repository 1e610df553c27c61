"""The running service: configuration, HTTP/SOAP transport, dispatch, storage, CLI.

This is the only package that does I/O; the protocol core lives in ``profiles``.
"""
