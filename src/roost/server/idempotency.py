"""Idempotency keys: a request retried with the same `Idempotency-Key` runs once.

The first request with a key records that it is running, then its answer (success, or a 4xx
that a retry would only repeat). A retry gets that answer back; a retry while the first still
runs gets 409; the same key with a different request gets 400. Server errors and rate limits
are not recorded, so a retry after them runs again.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, select

from roost.backends.sql.tables import idempotency_keys, utcnow
from roost.errors import APIError, ConflictError, ValidationError
from roost.services.context import Context

_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
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
    key_hash = _sha256(f"{who}\0{key}".encode())
    request_hash = _sha256(request)
    db = ctx.platform.db
    now = utcnow()
    async with db.write(ctx.tenant) as conn:
        row = (
            (
                await conn.execute(
                    select(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash)
                )
            )
            .mappings()
            .first()
        )
        if row is not None and row["expires_at"] <= now:
            await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash)
            )
            row = None
        if row is not None:
            return _replay(row["request_hash"], request_hash, row["status_code"], row["body"])
        if random.random() < 1 / 64:
            await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
        await conn.execute(
            idempotency_keys.insert().values(
                key_hash=key_hash,
                operation="request",
                request_hash=request_hash,
                expires_at=now + timedelta(seconds=ctx.platform.settings.idempotency_ttl),
            )
        )
    try:
        status, payload = await call()
    except APIError as exc:
        if (
            exc.status_code is not None
            and exc.status_code < 500
            and exc.status_code not in _NOT_RECORDED
        ):
            await _record(ctx, key_hash, exc.status_code, {"error": exc.to_dict()})
        else:
            await _forget(ctx, key_hash)
        raise
    except BaseException:
        await _forget(ctx, key_hash)
        raise
    await _record(ctx, key_hash, status, payload)
    return status, payload


def _replay(
    recorded_hash: str, request_hash: str, status: int | None, body: bytes | None
) -> Outcome:
    if recorded_hash != request_hash:
        raise ValidationError(
            "this Idempotency-Key was used for a different request; use a new key",
            details={"field": "Idempotency-Key"},
        )
    if status is None or body is None:
        raise ConflictError(
            "a request with this Idempotency-Key is still running; retry later",
            code="idempotency_in_progress",
        )
    return status, msgspec.msgpack.decode(body)


async def _record(ctx: Context, key_hash: str, status: int, payload: Any) -> None:
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.key_hash == key_hash)
            .values(status_code=status, body=msgspec.msgpack.encode(payload))
        )


async def _forget(ctx: Context, key_hash: str) -> None:
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key_hash == key_hash))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
