"""Short-lived caches of what services read per tenant, owned by the services that fill them.

A service declares its cache once, at module level (`_SCHEMAS = TenantCache("schemas", 2.0)`),
and reads it through the platform it serves (`_SCHEMAS.of(platform)`), so two servers in one
process (the tests run many) never share entries. The platform only keeps them, so that it can
forget a tenant in every cache at once (`Platform.forget_cached`) when the tenant is deleted or
its settings change, on this replica and, through the bus, on the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from roost.services.context import Platform

V = TypeVar("V")
Clock = Callable[[], float]


class TTLCache(Generic[V]):
    """Values (never None) by key, each kept `ttl` seconds after it was put (past
    `max_entries`, the expired ones are dropped, and the oldest if need be). `get_or_load`
    loads a missing key once for all concurrent callers, and a load that a `pop` or `clear`
    overtook is answered to those who asked before, but neither kept nor given to those who
    ask after (it may be stale)."""

    def __init__(
        self,
        ttl: float,
        *,
        clock: Clock = time.monotonic,
        max_entries: int = 10_000,
        until: Callable[[V], float | None] | None = None,
    ):
        """`until`: the time (on `clock`) past which a value must not be kept, read off the
        value itself (a credential's expiry), or None for no such limit."""
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._until = until
        self._entries: dict[str, tuple[float, V]] = {}  # key -> (expires at, value)
        # a load under way, shared by its waiters; None as its result: the loader was cancelled
        self._loading: dict[str, asyncio.Future[V | None]] = {}

    def get(self, key: str) -> V | None:
        """The value, if it was put less than `ttl` seconds ago."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, value: V, ttl: float | None = None) -> None:
        """Keep `value` for `ttl` seconds (the cache's own by default), never past its `until`;
        a value that would expire at once (a ttl of 0) is not kept."""
        now = self._clock()
        expires = now + (self.ttl if ttl is None else ttl)
        limit = None if self._until is None else self._until(value)
        if limit is not None:
            expires = min(expires, limit)
        if expires <= now:
            return
        if len(self._entries) >= self._max and key not in self._entries:
            self._make_room(now)
        self._entries[key] = (expires, value)

    def _make_room(self, now: float) -> None:
        """Drop the expired entries and, if most are alive, the oldest (a quarter of the
        cache), in one rebuild of the dict. Entries are only dropped when read, so a long-lived
        cache fills with expired ones; dropping the oldest one per put then walked the dict's
        dead slots each time (~33 µs a put at 50,000 entries)."""
        alive = [(key, entry) for key, entry in self._entries.items() if entry[0] > now]
        keep = self._max - max(1, self._max // 4)
        self._entries = dict(alive[max(0, len(alive) - keep) :])

    def pop(self, key: str) -> None:
        """Forget `key` (a no-op if it is not kept). A load under way for it is not kept, and
        is not joined by later callers: they load afresh (a change made through this process
        is seen by every read begun after it)."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The kept value, else the result of one `load()` shared by every concurrent caller:
        when an entry expires under load, one read refills it, not one per request."""
        value = self.get(key)
        if value is not None:
            return value
        pending = self._loading.get(key)
        if pending is not None:
            # shielded: a waiter that is cancelled must not cancel the load the others wait on
            loaded = await asyncio.shield(pending)
            return await self.get_or_load(key, load) if loaded is None else loaded
        pending = asyncio.get_running_loop().create_future()
        self._loading[key] = pending
        try:
            value = await load()
        except asyncio.CancelledError:
            # the loader's caller went away (a cancelled call): that is not the waiters'
            # failure, so they load again rather than re-raise a cancellation of its own
            pending.set_result(None)
            raise
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: a load nobody else waited for logs nothing
            raise
        else:
            pending.set_result(value)
            if self._loading.get(key) is pending:  # neither popped nor cleared meanwhile
                self.put(key, value)
            return value
        finally:
            if self._loading.get(key) is pending:
                del self._loading[key]


class TenantCache(Generic[V]):
    """A cache keyed by tenant name, declared by the service that owns it; each platform
    holds its own `TTLCache` for it, made on first use and timed by the platform's clock."""

    def __init__(self, name: str, ttl: float) -> None:
        self.name = name
        self.ttl = ttl

    def of(self, platform: Platform) -> TTLCache[V]:
        cache: Any = platform.caches.get(self.name)
        if cache is None:
            made = TTLCache[V](self.ttl, clock=platform.clock.monotonic)
            cache = platform.caches[self.name] = made
        typed: TTLCache[V] = cache
        return typed
