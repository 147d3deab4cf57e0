"""Idempotency keys: a request retried with the same `Idempotency-Key` runs once.

The first request with a key records that it is running, then its answer (success, or a 4xx
that a retry would only repeat), in the KV store (SQL, or Redis when replicas share one), with
`idempotency_ttl`. The door checks the caller's access to the operation before the record is
looked up. A retry gets that answer back; a retry while the first still runs gets 409; the
same key with a different request gets 400. Server errors and rate limits are not recorded, so
a retry after them runs again.

A record keeps no secret at rest, though answers carry some (`auth.login` tokens, the key of
`api_keys.create`). Three values are derived (HKDF-SHA256) from the idempotency key, which only
the client holds, salted by a server key and bound to the tenant and the credential (API key
or session): the record's KV key, a MAC key that fingerprints the request (a plain hash of a
login body would let a store reader test passwords), and the AES-256-GCM key that seals the
answer. A replay with the same idempotency key opens the answer; without that key, the store
(even with the server's keys) opens nothing.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from roost.errors import APIError, ConflictError, ServerError, ValidationError
from roost.services.context import Context

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# `cryptography` is imported by the first request that carries an Idempotency-Key, not when
# the server starts.

KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
_KEY = re.compile(KEY_PATTERN)
_SPACE = "$idempotency:"  # KV keys of tenants start with the tenant name, never with "$"
_NOT_RECORDED = {408, 409, 429}
_NONCE = 12

Outcome = tuple[int, Any]


def slot_prefix(tenant: str) -> str:
    """The start of the KV key of every idempotency record of `tenant` (purged with it)."""
    return f"{_SPACE}{tenant}:"


async def run_once(
    ctx: Context, key: str, request: bytes, call: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Run `call` unless a request with `key` already ran; then return its recorded outcome."""
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 8-128 letters, digits or _ . : -",
            details={"field": "Idempotency-Key"},
        )
    record = _Record.derive(ctx, key)
    fingerprint = record.fingerprint(request)
    kv, ttl = ctx.platform.kv, ctx.platform.settings.idempotency_ttl
    running = msgspec.json.encode(_Stored(fingerprint)).decode()
    if not await kv.set(record.slot, running, ttl=ttl, nx=True):
        entry = await kv.get(record.slot)
        if entry is not None:
            return record.replay(msgspec.json.decode(entry.value, type=_Stored), fingerprint)
        if not await kv.set(record.slot, running, ttl=ttl, nx=True):  # it expired just now
            raise ConflictError(
                "a request with this Idempotency-Key is running; retry later",
                code="idempotency_in_progress",
            )
    try:
        status, payload = await call()
    except APIError as exc:
        if (
            exc.status_code is not None
            and exc.status_code < 500
            and exc.status_code not in _NOT_RECORDED
        ):
            await record.save(ctx, fingerprint, exc.status_code, {"error": exc.to_dict()})
        else:
            await kv.delete([record.slot])
        raise
    except BaseException:
        await kv.delete([record.slot])
        raise
    await record.save(ctx, fingerprint, status, payload)
    return status, payload


def _credential_of(ctx: Context) -> str:
    """The credential a record belongs to: an API key, a session, else the user (a minted
    token), a running function, or an anonymous client address. Another credential of the
    same user, a narrower API key or function above all, never finds the record."""
    principal = ctx.principal
    if principal is None:
        return f"anonymous@{ctx.client_address}"
    if principal.function is not None:  # a running function: narrower than its caller
        limits = "|".join(",".join(sorted(scopes)) for scopes in principal.limits)
        return f"{principal.user_id}\0function:{principal.function}:{limits}"
    if principal.api_key_id is not None:
        return f"{principal.user_id}\0key:{principal.api_key_id}"
    if principal.session_id is not None:
        return f"{principal.user_id}\0session:{principal.session_id}"
    return f"{principal.user_id}\0user"


class _Stored(msgspec.Struct, omit_defaults=True):
    """What the KV store holds: the request's MAC, then the sealed answer (base64)."""

    request: str
    sealed: str | None = None


class _Answer(msgspec.Struct, array_like=True):
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class _Record:
    """One idempotency record: where it lives and the keys that read it, all from the key."""

    slot: str
    mac_key: bytes
    aead: AESGCM

    @classmethod
    def derive(cls, ctx: Context, key: str) -> _Record:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        who = _credential_of(ctx)
        okm = HKDF(
            algorithm=hashes.SHA256(),
            length=96,
            salt=ctx.platform.access_tokens.derive("idempotency"),
            info=b"roost idempotency v1\0" + f"{ctx.tenant}\0{who}".encode(),
        ).derive(key.encode())
        return cls(slot_prefix(ctx.tenant) + okm[:32].hex(), okm[32:64], AESGCM(okm[64:]))

    def fingerprint(self, request: bytes) -> str:
        return hmac.digest(self.mac_key, request, "sha256").hex()

    async def save(self, ctx: Context, fingerprint: str, status: int, body: Any) -> None:
        nonce = os.urandom(_NONCE)
        plain = msgspec.json.encode(_Answer(status, body))
        sealed = nonce + self.aead.encrypt(nonce, plain, self._bound(fingerprint))
        stored = _Stored(fingerprint, base64.b64encode(sealed).decode())
        await ctx.platform.kv.set(
            self.slot,
            msgspec.json.encode(stored).decode(),
            ttl=ctx.platform.settings.idempotency_ttl,
        )

    def replay(self, stored: _Stored, fingerprint: str) -> Outcome:
        if not hmac.compare_digest(stored.request, fingerprint):
            raise ValidationError(
                "this Idempotency-Key was used for a different request; use a new key",
                details={"field": "Idempotency-Key"},
            )
        if stored.sealed is None:
            raise ConflictError(
                "a request with this Idempotency-Key is still running; retry later",
                code="idempotency_in_progress",
            )
        from cryptography.exceptions import InvalidTag

        sealed = base64.b64decode(stored.sealed)
        try:
            plain = self.aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._bound(fingerprint))
        except InvalidTag:
            raise ServerError(
                "the recorded answer for this Idempotency-Key does not open; use a new key"
            ) from None
        answer = msgspec.json.decode(plain, type=_Answer)
        return answer.status, answer.body

    def _bound(self, fingerprint: str) -> bytes:
        # associated data: a sealed answer copied to another record or request does not open
        return f"{self.slot}\0{fingerprint}".encode()
