"""Private keys: where they come from and how they are written.

``KeySource`` is the one interface the rest of the code asks for a key; a file
is the only source today, and a hardware module (PKCS#11) can implement the
same two methods later without touching the callers. Keys are written 0600
from the first byte, encrypted when a passphrase environment variable is named
(the passphrase itself never appears on a command line or in a file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.authority import write_private_key

RSA_BITS = 2048


class KeyError_(ValueError):
    """A key cannot be read, decrypted or written; the message says which and why."""


class KeySource(Protocol):
    """Something that holds a private key: a file today, a hardware module later."""

    def public_key(self) -> PublicKeyTypes: ...

    def private_key(self) -> PrivateKeyTypes: ...


def passphrase_from_env(variable: str | None) -> bytes | None:
    """The passphrase held in environment variable ``variable`` (None: no passphrase)."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise KeyError_(f"environment variable {variable} is not set (it holds the passphrase)")
    return value.encode()


class FileKeySource:
    """A PEM (or DER) private key file, decrypted with a passphrase from the environment."""

    def __init__(self, path: Path, passphrase_env: str | None = None) -> None:
        self.path = Path(path)
        self.passphrase_env = passphrase_env
        self._key: PrivateKeyTypes | None = None

    def private_key(self) -> PrivateKeyTypes:
        if self._key is None:
            self._key = load_key_file(self.path, passphrase_from_env(self.passphrase_env))
        return self._key

    def public_key(self) -> PublicKeyTypes:
        return self.private_key().public_key()


def load_key_file(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyError_(f"{path}: {exc.strerror}") from None
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        return loader(data, password=password)
    except TypeError:
        raise KeyError_(f"{path}: the key is encrypted; name the passphrase variable") from None
    except ValueError as exc:
        raise KeyError_(f"{path}: not a usable private key ({exc})") from None


def new_private_key(kind: str = "rsa") -> PrivateKeyTypes:
    """RSA-2048 (what exchanges ask for, and SAML signing needs) or EC P-256."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def key_pem(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def save_key(
    path: Path, key: PrivateKeyTypes, *, passphrase_env: str | None = None, overwrite: bool = False
) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600, encrypted if ``passphrase_env`` is given."""
    write_private_key(Path(path), key_pem(key, passphrase_from_env(passphrase_env)),
                      overwrite=overwrite)


def load_pkcs12(
    path: Path, password: bytes | None = None
) -> tuple[PrivateKeyTypes | None, list[x509.Certificate]]:
    """A PKCS#12 file -> (its key, [its certificate, then the extra certificates])."""
    try:
        bundle = pkcs12.load_pkcs12(Path(path).read_bytes(), password)
    except ValueError as exc:
        raise KeyError_(f"{path}: not a readable PKCS#12 file ({exc})") from None
    certs = [bundle.cert.certificate] if bundle.cert else []
    certs += [c.certificate for c in bundle.additional_certs]
    return bundle.key, certs


def public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def matches(certificate: x509.Certificate, source: KeySource) -> bool:
    """Whether ``source`` holds the private half of ``certificate``'s public key."""
    return public_der(certificate.public_key()) == public_der(source.public_key())
