"""Keys: written 0600, encrypted with a passphrase from the environment, PKCS#12 read."""

from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certs import keys
from tests.certs import pki


def test_key_written_0600_and_loaded_back(tmp_path):
    key = keys.new_private_key()
    path = tmp_path / "k.pem"
    keys.save_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED" not in path.read_bytes()
    source = keys.FileKeySource(path)
    assert keys.public_der(source.public_key()) == keys.public_der(key.public_key())
    with pytest.raises(FileExistsError):
        keys.save_key(path, key)


def test_encrypted_with_a_passphrase_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_KEY_PASS", "correct horse")
    path = tmp_path / "k.pem"
    keys.save_key(path, keys.new_private_key("ec"), passphrase_env="GW_KEY_PASS")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys.FileKeySource(path, "GW_KEY_PASS").private_key()
    with pytest.raises(keys.KeyError_, match="encrypted"):
        keys.FileKeySource(path).private_key()
    monkeypatch.delenv("GW_KEY_PASS")
    with pytest.raises(keys.KeyError_, match="GW_KEY_PASS is not set"):
        keys.FileKeySource(path, "GW_KEY_PASS").private_key()


def test_pkcs12_and_key_match(tmp_path):
    ca = pki.make("P12 CA", ca=True)
    leaf = pki.make("p12 leaf", ca)
    blob = pkcs12.serialize_key_and_certificates(
        b"leaf", leaf.private_key, leaf.certificate, [ca.certificate],
        serialization.BestAvailableEncryption(b"pw"))
    path = tmp_path / "bundle.p12"
    path.write_bytes(blob)
    key, certs = keys.load_pkcs12(path, b"pw")
    assert certs == [leaf.certificate, ca.certificate]
    keys.save_key(tmp_path / "k.pem", key)
    assert keys.matches(leaf.certificate, keys.FileKeySource(tmp_path / "k.pem"))
    assert not keys.matches(ca.certificate, keys.FileKeySource(tmp_path / "k.pem"))
    with pytest.raises(keys.KeyError_):
        keys.load_pkcs12(path, b"wrong")
