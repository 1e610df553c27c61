"""Certificates: a development and test CA (``authority``) and loading/expiry (``store``).

Everything here uses the ``cryptography`` package; nothing shells out to openssl.
"""
