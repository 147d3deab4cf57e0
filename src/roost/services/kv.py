"""The KV cache, per tenant: values, counters, hashes, scans and locks.

Each tenant's keys live under `<tenant>:` in the store (SQL tables or Redis), so a tenant
never reads or scans another's. Values are any JSON value, kept as JSON text.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from roost.backends.kv import Entry
from roost.errors import RoostError, ValidationError
from roost.services.context import Context
from roost.services.payloads import from_json, json_text
from roost.services.registry import each_valid, operation
from roost.services.tenants import kv_ttl_bounds
from roost.wire.kv import (
    CountAnswer,
    ExpireRequest,
    GetAnswer,
    HashAnswer,
    HDelRequest,
    HFieldRef,
    HSetRequest,
    IncrRequest,
    IntAnswer,
    KeyRef,
    KeysRequest,
    LockAnswer,
    LockRelease,
    LockRequest,
    ScanAnswer,
    ScanRequest,
    SetAnswer,
    SetRequest,
)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, searched at C speed


def _key(ctx: Context, key: str, field: str = "key") -> str:
    if _CONTROL.search(key):
        raise ValidationError(f"{field} may not hold control characters", details={"field": field})
    return f"{ctx.tenant}:{key}"


def _encode(ctx: Context, value: Any, field: str = "value") -> str:
    return json_text(value, field, ctx.platform.settings.kv_max_value_bytes)


async def _ttl(ctx: Context, ttl: int | None) -> int | None:
    """`ttl`, checked against the tenant's bounds (or the server's)."""
    low, high = await kv_ttl_bounds(ctx.platform, ctx.tenant)
    if ttl is None and high is not None:
        raise ValidationError(
            f"this server needs a ttl of at most {high} s", details={"field": "ttl"}
        )
    if ttl is not None and ((low is not None and ttl < low) or (high is not None and ttl > high)):
        raise ValidationError(
            f"ttl must be between {low or 1} and {high or 'any'} seconds", details={"field": "ttl"}
        )
    return ttl


def _wrong(exc: ValueError, field: str = "key") -> ValidationError:
    return ValidationError(
        f"cannot do that to this key: {exc}", code="wrong_type", details={"field": field}
    )


@operation("kv.set", scope="kv:write")
async def set_value(ctx: Context, params: SetRequest) -> SetAnswer:
    """Store a value (`nx`: only if absent, `xx`: only if present), optionally with a ttl."""
    if params.nx and params.xx:
        raise ValidationError("nx and xx exclude each other", details={"field": "xx"})
    stored = await ctx.platform.kv.set(
        _key(ctx, params.key),
        _encode(ctx, params.value),
        ttl=await _ttl(ctx, params.ttl),
        nx=params.nx,
        xx=params.xx,
    )
    return SetAnswer(success=stored)


async def get_values(ctx: Context, requests: list[KeyRef]) -> list[GetAnswer | RoostError]:
    """Many kv.get calls in one trip to the store, each answered in its place."""

    async def read(keys: list[str]) -> list[GetAnswer | RoostError]:
        entries = await ctx.platform.kv.get_many(keys)
        return [_wrong(e) if isinstance(e, ValueError) else _answer(e) for e in entries]

    return await each_valid(requests, lambda request: _key(ctx, request.key), read)


@operation("kv.get", scope="kv:read", read_only=True, batch=get_values)
async def get_value(ctx: Context, params: KeyRef) -> GetAnswer:
    """The value with its remaining ttl (-1: never expires); found=False if absent."""
    try:
        entry = await ctx.platform.kv.get(_key(ctx, params.key))
    except ValueError as exc:
        raise _wrong(exc) from None
    return _answer(entry)


def _answer(entry: Entry | None) -> GetAnswer:
    if entry is None:
        return GetAnswer(found=False)
    return GetAnswer(found=True, value=from_json(entry.value), ttl=entry.ttl)


@operation("kv.delete", scope="kv:write")
async def delete_keys(ctx: Context, params: KeysRequest) -> CountAnswer:
    """Delete keys; the count says how many existed."""
    keys = [_key(ctx, k, f"keys[{i}]") for i, k in enumerate(params.keys)]
    return CountAnswer(count=await ctx.platform.kv.delete(keys))


@operation("kv.incr", scope="kv:write")
async def incr(ctx: Context, params: IncrRequest) -> IntAnswer:
    """Add to an integer atomically (an absent key counts as 0); negative amounts subtract."""
    try:
        return IntAnswer(value=await ctx.platform.kv.incr(_key(ctx, params.key), params.amount))
    except ValueError as exc:
        raise ValidationError(
            f"{params.key!r} does not hold an integer ({exc})",
            code="not_an_integer",
            details={"field": "key"},
        ) from None


@operation("kv.scan", scope="kv:read", read_only=True)
async def scan(ctx: Context, params: ScanRequest) -> ScanAnswer:
    """Keys under a prefix, a page at a time; pass `cursor` back until has_more is false."""
    prefix = _key(ctx, params.prefix, "prefix")
    keys, cursor = await ctx.platform.kv.scan(prefix, params.cursor, params.count)
    own = len(ctx.tenant) + 1
    return ScanAnswer(keys=[k[own:] for k in keys], cursor=cursor, has_more=cursor is not None)


@operation("kv.expire", scope="kv:write")
async def expire(ctx: Context, params: ExpireRequest) -> SetAnswer:
    """Give a key a ttl; success=False if there is no such key."""
    ttl = await _ttl(ctx, params.ttl)
    assert ttl is not None
    return SetAnswer(success=await ctx.platform.kv.expire(_key(ctx, params.key), ttl))


@operation("kv.hset", scope="kv:write")
async def hset(ctx: Context, params: HSetRequest) -> CountAnswer:
    """Set a field of a hash (count: 1 if the field is new)."""
    try:
        added = await ctx.platform.kv.hset(
            _key(ctx, params.key),
            {params.field: _encode(ctx, params.value)},
            ttl=await _ttl(ctx, params.ttl) if params.ttl else None,
        )
    except ValueError as exc:
        raise _wrong(exc) from None
    return CountAnswer(count=added)


@operation("kv.hget", scope="kv:read", read_only=True)
async def hget(ctx: Context, params: HFieldRef) -> GetAnswer:
    """One field of a hash."""
    try:
        value = await ctx.platform.kv.hget(_key(ctx, params.key), params.field)
    except ValueError as exc:
        raise _wrong(exc) from None
    return GetAnswer(found=value is not None, value=None if value is None else from_json(value))


@operation("kv.hgetall", scope="kv:read", read_only=True)
async def hgetall(ctx: Context, params: KeyRef) -> HashAnswer:
    """Every field of a hash ({} if absent)."""
    try:
        fields = await ctx.platform.kv.hgetall(_key(ctx, params.key))
    except ValueError as exc:
        raise _wrong(exc) from None
    return HashAnswer(fields={k: from_json(v) for k, v in fields.items()})


@operation("kv.hdel", scope="kv:write")
async def hdel(ctx: Context, params: HDelRequest) -> CountAnswer:
    """Delete fields of a hash; the count says how many existed."""
    try:
        return CountAnswer(count=await ctx.platform.kv.hdel(_key(ctx, params.key), params.fields))
    except ValueError as exc:
        raise _wrong(exc) from None


@operation("kv.lock_acquire", scope="kv:write")
async def lock_acquire(ctx: Context, params: LockRequest) -> LockAnswer:
    """Take a lock for `ttl` seconds; the token it returns is what releases it."""
    token = secrets.token_urlsafe(16)
    acquired = await ctx.platform.kv.acquire(_key(ctx, params.name, "name"), token, params.ttl)
    return LockAnswer(acquired=acquired, token=token if acquired else None)


@operation("kv.lock_release", scope="kv:write")
async def lock_release(ctx: Context, params: LockRelease) -> SetAnswer:
    """Release a lock; only its owner's token does (success=False otherwise)."""
    released = await ctx.platform.kv.release(_key(ctx, params.name, "name"), params.token)
    return SetAnswer(success=released)
