import pytest

from onepass.crypto import DecryptionError, KeyedHasher, SecretBox, fingerprint

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


def test_secret_box_decrypts_under_a_fallback_and_encrypts_under_the_primary() -> None:
    old, new = KEY, KEY + "-new"
    sealed_old = SecretBox(old).encrypt(b"x", "c")
    rotating = SecretBox(new, [old])
    assert rotating.decrypt(sealed_old, "c") == b"x"
    assert not rotating.under_primary(sealed_old, "c")
    sealed_new = rotating.encrypt(b"y", "c")
    assert rotating.under_primary(sealed_new, "c")
    assert SecretBox(new).decrypt(sealed_new, "c") == b"y"
    with pytest.raises(DecryptionError):
        SecretBox(old).decrypt(sealed_new, "c")
    with pytest.raises(DecryptionError):
        SecretBox(new, [KEY + "-other"]).decrypt(sealed_old, "c")


def test_fingerprints_name_keys_without_revealing_them() -> None:
    box = SecretBox(KEY, [KEY + "2"])
    assert box.fingerprints == [fingerprint(KEY), fingerprint(KEY + "2")]
    assert len(set(box.fingerprints)) == 2
    assert all(KEY[:8] not in fp for fp in box.fingerprints)


def test_a_hasher_given_the_stored_pepper_verifies_hashes_made_under_the_old_key() -> None:
    stored = KeyedHasher(KEY).hash("s3cret")
    after_rotation = KeyedHasher(KEY + "-new")
    assert not after_rotation.verify("s3cret", stored)
    after_rotation.use(KeyedHasher(KEY).pepper)
    assert after_rotation.verify("s3cret", stored)
