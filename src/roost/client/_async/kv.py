"""`client.kv`: the KV cache (Synap kv, Dominus redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._core.results import GetResult, ScanResult, SetResult, decode
from roost.errors import ConflictError

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncKV(Namespace):
    """Values with optional ttls, counters, hashes, scans and locks, per tenant."""

    _client: AsyncClient

    async def set(
        self, key: str, value: Any, ttl: int | None = None, *, nx: bool = False, xx: bool = False
    ) -> SetResult:
        """Store any JSON value (`nx`: only if absent, `xx`: only if present).

        Example:
            await client.kv.set("session:abc", {"user_id": 123}, ttl=3600)
        """
        params: dict[str, Any] = {"key": key, "value": value, "nx": nx, "xx": xx}
        if ttl is not None:
            params["ttl"] = ttl
        # not idempotent: a retried nx set must replay its first answer, not report False
        return decode(await self._client.call("kv.set", params), SetResult)

    async def setnx(self, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store only if the key is absent; True if this call stored it, False if the key was
        taken.

        Example:
            if await client.kv.setnx("lock:job", "worker-1", ttl=60):
                ...  # this worker holds it
        """
        return (await self.set(key, value, ttl, nx=True)).success

    async def get(self, key: str) -> GetResult:
        """`GetResult(found, value, ttl)`.

        Example:
            result = await client.kv.get("session:abc")
        """
        answer = await self._client.call("kv.get", {"key": key}, idempotent=True)
        return decode(answer, GetResult)

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed.

        Example:
            await client.kv.delete("a", "b")
        """
        return int((await self._client.call("kv.delete", {"keys": list(keys)}))["count"])

    async def incr(self, key: str, amount: int = 1) -> int:
        """Add atomically and return the new value (an absent key counts as 0).

        Example:
            views = await client.kv.incr("views:home")
        """
        return int((await self._client.call("kv.incr", {"key": key, "amount": amount}))["value"])

    async def decr(self, key: str, amount: int = 1) -> int:
        """Subtract atomically and return the new value.

        Example:
            left = await client.kv.decr("stock:42")
        """
        return await self.incr(key, -amount)

    async def scan(
        self, prefix: str = "", cursor: str | None = None, count: int = 100
    ) -> ScanResult:
        """A page of keys under `prefix`.

        Example:
            page = await client.kv.scan("session:")
        """
        params: dict[str, Any] = {"prefix": prefix, "count": count}
        if cursor is not None:
            params["cursor"] = cursor
        return decode(await self._client.call("kv.scan", params, idempotent=True), ScanResult)

    async def expire(self, key: str, ttl: int) -> bool:
        """Give a key a ttl; False if there is no such key.

        Example:
            await client.kv.expire("session:abc", 60)
        """
        result = await self._client.call("kv.expire", {"key": key, "ttl": ttl}, idempotent=True)
        return bool(result["success"])

    async def ttl(self, key: str) -> int | None:
        """Seconds left (-1: never expires), or None if there is no such key.

        Example:
            left = await client.kv.ttl("session:abc")
        """
        result = await self.get(key)
        return result.ttl if result.found else None

    async def hset(self, key: str, field: str, value: Any, ttl: int | None = None) -> int:
        """Set a field of a hash; returns 1 if the field is new.

        Example:
            await client.kv.hset("user:1", "name", "Ann")
        """
        params: dict[str, Any] = {"key": key, "field": field, "value": value}
        if ttl is not None:
            params["ttl"] = ttl
        return int((await self._client.call("kv.hset", params))["count"])

    async def hget(self, key: str, field: str) -> Any:
        """A field of a hash, or None.

        Example:
            name = await client.kv.hget("user:1", "name")
        """
        return (await self._client.call("kv.hget", {"key": key, "field": field}, idempotent=True))[
            "value"
        ]

    async def hgetall(self, key: str) -> dict[str, Any]:
        """Every field of a hash.

        Example:
            user = await client.kv.hgetall("user:1")
        """
        result = await self._client.call("kv.hgetall", {"key": key}, idempotent=True)
        return dict(result["fields"])

    async def hdel(self, key: str, *fields: str) -> int:
        """Delete fields of a hash; returns how many existed.

        Example:
            await client.kv.hdel("user:1", "name")
        """
        result = await self._client.call("kv.hdel", {"key": key, "fields": list(fields)})
        return int(result["count"])

    @asynccontextmanager
    async def lock(self, name: str, ttl: int = 30, *, wait: float = 10.0) -> AsyncIterator[str]:
        """Hold the lock `name` for the block (waiting up to `wait` seconds to get it); only
        this holder can release it. ConflictError if it stays taken.

        Example:
            async with client.kv.lock("nightly-report", ttl=60):
                ...
        """
        deadline = time.monotonic() + wait
        while True:
            answer = await self._client.call("kv.lock_acquire", {"name": name, "ttl": ttl})
            if answer["acquired"]:
                break
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"lock {name!r} is held by someone else",
                    code="lock_held",
                    details={"name": name},
                )
            await asyncio.sleep(0.05)
        try:
            yield answer["token"]
        finally:
            await self._client.call("kv.lock_release", {"name": name, "token": answer["token"]})
