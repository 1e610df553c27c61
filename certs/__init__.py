"""Certificates: the gateway's keys, the trust store, partner certificates, expiry, rotation.

authority (development CA), store (PEM loading, expiry), keys (KeySource, 0600 and
encrypted keys, PKCS#12), verify (chains with a purpose), revocation (CRL, OCSP),
inventory (every certificate in use, status), changes (backed-up edits), reload
(SIGHUP through the pid file), csr, show, cli and rotate (``ihe-gateway certs``).
Everything here uses the ``cryptography`` package; nothing shells out to openssl.
"""
