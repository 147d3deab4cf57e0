"""The Idempotency-Key's HKDF, written out on the standard library (server/idempotency.py),
gives the bytes of RFC 5869 and of `cryptography`'s HKDF."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from roost.server.idempotency import hkdf_sha256


def test_rfc_5869_case_1() -> None:
    okm = hkdf_sha256(
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        key=bytes.fromhex("0b" * 22),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


@pytest.mark.parametrize("length", [1, 32, 33, 96, 255])
@pytest.mark.parametrize("salt_size", [0, 16, 32, 80])
def test_the_same_bytes_as_cryptography(length: int, salt_size: int) -> None:
    salt, key, info = os.urandom(salt_size), os.urandom(24), os.urandom(40)
    theirs = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info)
    assert hkdf_sha256(salt=salt, key=key, info=info, length=length) == theirs.derive(key)


def test_lengths_past_the_limit_are_refused() -> None:
    with pytest.raises(ValueError, match="8160"):
        hkdf_sha256(salt=b"s", key=b"k", info=b"", length=8161)
