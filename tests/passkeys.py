"""A software authenticator for the passkey tests: what a browser and a platform
authenticator do for `navigator.credentials.create` and `.get`, built on `cryptography`
(ES256 keys) and `cbor2`, answering the JSON a browser's `PublicKeyCredential.toJSON()` gives.

Attestation is "none" (the server asks for none). Flags: user present and verified unless
told otherwise; the counter grows by one per signature, or stays 0 (`counting=False`), as
synced passkeys do. Each knob a test turns (`origin`, `challenge`, `rp_id`, `count`) makes
the answer a hostile or broken client would send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

_UP, _UV, _AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Key:
    """One passkey the authenticator holds: its credential id, key, user and counter."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    count: int = 0


@dataclass
class Authenticator:
    origin: str
    counting: bool = True
    keys: list[Key] = field(default_factory=list)

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        challenge: str | None = None,
        verified: bool = True,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """A new passkey for `options` (the server's creation options): the credential JSON."""
        rp_id = options["rp"]["id"]
        key = Key(
            credential_id=credential_id or secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=unb64url(options["user"]["id"]),
        )
        self.keys.append(key)
        numbers = key.private_key.public_key().public_numbers()
        cose = {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(key.credential_id))
            + key.credential_id
            + cbor2.dumps(cose)
        )
        flags = _UP | _AT | (_UV if verified else 0)
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", 0)
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data + attested})
        return {
            "id": b64url(key.credential_id),
            "rawId": b64url(key.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        key: Key | None = None,
        *,
        origin: str | None = None,
        challenge: str | None = None,
        count: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """An assertion for `options` (the server's request options) by `key` (else the
        newest for the options' RP id): the credential JSON."""
        key = key or next(k for k in reversed(self.keys) if k.rp_id == options["rpId"])
        if count is None:
            if self.counting:
                key.count += 1
            count = key.count
        auth_data = (
            hashlib.sha256(key.rp_id.encode()).digest()
            + bytes([_UP | _UV])
            + struct.pack(">I", count)
        )
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = key.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(key.credential_id),
            "rawId": b64url(key.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(user_handle if user_handle is not None else key.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()
