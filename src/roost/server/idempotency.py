"""Idempotency keys: a request retried with the same `Idempotency-Key` runs once.

The first request with a key records that it is running, then its answer (success, or a 4xx
that a retry would only repeat), in the KV store (SQL, or Redis when replicas share one), with
`idempotency_ttl`. A retry gets that answer back; a retry while the first still
runs gets 409; the same key with a different request gets 400. Server errors and rate limits
are not recorded, so a retry after them runs again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from roost.errors import APIError, ConflictError, ValidationError
from roost.services.context import Context

KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
_KEY = re.compile(KEY_PATTERN)
_SPACE = "$idempotency:"  # KV keys of tenants start with the tenant name, never with "$"
_NOT_RECORDED = {408, 409, 429}

Outcome = tuple[int, Any]


async def run_once(
    ctx: Context, key: str, request: bytes, call: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Run `call` unless a request with `key` already ran; then return its recorded outcome."""
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 8-128 letters, digits or _ . : -",
            details={"field": "Idempotency-Key"},
        )
    who = ctx.principal.user_id if ctx.principal else f"anonymous@{ctx.client_address}"
    slot = _SPACE + ctx.tenant + ":" + _sha256(f"{who}\0{key}".encode())
    request_hash = _sha256(request)
    kv, ttl = ctx.platform.kv, ctx.platform.settings.idempotency_ttl
    running = msgspec.json.encode({"request": request_hash}).decode()
    if not await kv.set(slot, running, ttl=ttl, nx=True):
        entry = await kv.get(slot)
        if entry is not None:
            return _replay(msgspec.json.decode(entry.value, type=_Recorded), request_hash)
        if not await kv.set(slot, running, ttl=ttl, nx=True):  # it expired just now
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
            await _record(ctx, slot, request_hash, exc.status_code, {"error": exc.to_dict()})
        else:
            await kv.delete([slot])
        raise
    except BaseException:
        await kv.delete([slot])
        raise
    await _record(ctx, slot, request_hash, status, payload)
    return status, payload


class _Recorded(msgspec.Struct):
    request: str
    status: int | None = None
    body: Any = None


def _replay(recorded: _Recorded, request_hash: str) -> Outcome:
    if recorded.request != request_hash:
        raise ValidationError(
            "this Idempotency-Key was used for a different request; use a new key",
            details={"field": "Idempotency-Key"},
        )
    if recorded.status is None:
        raise ConflictError(
            "a request with this Idempotency-Key is still running; retry later",
            code="idempotency_in_progress",
        )
    return recorded.status, recorded.body


async def _record(ctx: Context, slot: str, request_hash: str, status: int, body: Any) -> None:
    answer = msgspec.json.encode(_Recorded(request_hash, status, body)).decode()
    await ctx.platform.kv.set(slot, answer, ttl=ctx.platform.settings.idempotency_ttl)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
