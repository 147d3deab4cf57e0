"""The KV cache: one protocol, SQL tables (embedded default) or Redis (`ROOST_REDIS_URL`).

Values are JSON text, so that Redis' own INCRBY works on integers and refuses anything else.
Keys given to a store are already namespaced by the service (`<tenant>:<key>`). A `ttl` given
to a store is in seconds, kept to the millisecond (the API takes whole seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec

from roost.backends import messaging_backend

if TYPE_CHECKING:
    from roost.backends.sql import Database

NO_EXPIRY = -1
"""What `ttl` answers for a key that never expires."""


class Entry(msgspec.Struct, frozen=True):
    value: str  # JSON text
    ttl: int  # seconds left, or NO_EXPIRY


class KVStore(Protocol):
    kind: str

    async def set(
        self, key: str, value: str, *, ttl: float | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        """Store `value`; with nx only if absent, with xx only if present. Returns whether it
        was stored. A set without ttl removes any expiry the key had."""
        ...

    async def get(self, key: str) -> Entry | None:
        """The value and its remaining ttl; None if absent or expired (expired keys never
        come back)."""
        ...

    async def get_many(self, keys: list[str]) -> list[Entry | ValueError | None]:
        """`get` of each key, read at one moment in one trip to the store; a key that holds a
        hash gives its ValueError in its place instead of failing the others."""
        ...

    async def delete(self, keys: list[str]) -> int:
        """Remove keys; returns how many existed. Absent keys are skipped."""
        ...

    async def incr(self, key: str, amount: int) -> int:
        """Add `amount` atomically (an absent key counts as 0) and return the new value.
        A value that is not an integer raises ValueError (nothing changes)."""
        ...

    async def scan(
        self, prefix: str, cursor: str | None, count: int
    ) -> tuple[list[str], str | None]:
        """Up to about `count` keys starting with `prefix`, and the cursor to continue (None
        when done). A full scan returns every key present throughout it."""
        ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Set a key's ttl; False if the key does not exist."""
        ...

    async def hset(self, key: str, fields: dict[str, str], ttl: float | None = None) -> int:
        """Set hash fields (values JSON text); returns how many were new."""
        ...

    async def hget(self, key: str, field: str) -> str | None: ...

    async def hgetall(self, key: str) -> dict[str, str]: ...

    async def hdel(self, key: str, fields: list[str]) -> int: ...

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        """Take the lock `name` for `token` unless someone holds it."""
        ...

    async def release(self, name: str, token: str) -> bool:
        """Release the lock if `token` holds it; False otherwise (never frees another's)."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key, hash and lock whose name starts with `prefix` (a tenant's, when it
        is deleted); returns how many keys went. Keys written while it runs may stay. With no
        such key it is a no-op, so a purge that was interrupted can simply run again."""
        ...

    async def close(self) -> None: ...


def open_kv_store(url: str | None, db: Database, *, near_cache_bytes: int = 0) -> KVStore:
    """The KV store of a `redis_url`: Redis (with a near cache of `near_cache_bytes`), or
    without one the tables of the SQL database `db`."""
    if url is not None and messaging_backend(url) == "redis":
        from roost.backends.kv.redis import RedisKVStore

        return RedisKVStore(url, near_cache_bytes=near_cache_bytes)
    from roost.backends.kv.sql import SqlKVStore

    return SqlKVStore(db)
