import pytest

from onepass.crypto import DecryptionError, KeyedHasher, SecretBox

KEY = "unit-test-secret-key-" + "s" * 32


def test_secret_box_round_trips_and_binds_context() -> None:
    box = SecretBox(KEY)
    sealed = box.encrypt(b"private key bytes", "signing_key:abc")
    assert b"private key bytes" not in sealed.encode()
    assert box.decrypt(sealed, "signing_key:abc") == b"private key bytes"
    with pytest.raises(DecryptionError):
        box.decrypt(sealed, "signing_key:other")


def test_secret_box_refuses_another_key_and_tampering() -> None:
    sealed = SecretBox(KEY).encrypt(b"x", "c")
    with pytest.raises(DecryptionError):
        SecretBox(KEY + "2").decrypt(sealed, "c")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptionError):
        SecretBox(KEY).decrypt(tampered, "c")
    with pytest.raises(DecryptionError):
        SecretBox(KEY).decrypt("v9." + sealed[3:], "c")


def test_keyed_hash_verifies_only_the_same_secret_under_the_same_key() -> None:
    hasher = KeyedHasher(KEY)
    stored = hasher.hash("s3cret")
    assert stored.startswith("hmac-sha256$") and "s3cret" not in stored
    assert hasher.verify("s3cret", stored)
    assert not hasher.verify("s3cret ", stored)
    assert not KeyedHasher(KEY + "2").verify("s3cret", stored)
