"""The message bus between the parts of the platform, in one process or across replicas.

Two things travel on it:

* **notifications**: `publish(channel, payload)` reaches every `listen(channel, ...)` callback
  in every replica (queue wake-ups, stream events, pub/sub messages, cache invalidations). It
  is best effort: a replica that is cut off misses what was sent meanwhile, which is why
  stream subscribers fill gaps from the stream's history, and queue consumers poll as well.
* **interest**: how many subscribers each replica holds under a key, so that a publisher can
  say how many subscribers it reached (`subscribers_notified`, `subscribers_matched`).

`MemoryBus` serves one process (the embedded default); `RedisBus` (`ROOST_REDIS_URL`) spans
replicas with Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from roost.backends import messaging_backend

logger = logging.getLogger("roost.bus")

Listener = Callable[[bytes], None]
"""Called with a payload on the event loop; it must not block (queue the work instead)."""


class Bus(Protocol):
    kind: str

    async def start(self) -> None: ...

    async def publish(self, channel: str, payload: bytes) -> None: ...

    def listen(self, channel: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every payload published on `channel`; returns the way to stop."""
        ...

    async def add_interest(self, key: str) -> None:
        """One more subscriber of this process under `key`. It counts at once, before any
        wait (so a caller may arrange the matching `drop_interest` before awaiting it); it
        returns once publishers of every replica can see it."""
        ...

    async def drop_interest(self, key: str) -> None:
        """One subscriber fewer under `key`, counted at once like `add_interest`."""
        ...

    async def interest(self, prefix: str) -> dict[str, int]:
        """Subscriber counts of every key starting with `prefix`, summed over live replicas."""
        ...

    async def close(self) -> None: ...


class LocalListeners:
    """The listeners of this process, by channel: what every bus delivers to in the end."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self.interest: Counter[str] = Counter()

    def listen(self, channel: str, listener: Listener) -> Callable[[], None]:
        self._listeners.setdefault(channel, []).append(listener)

        def stop() -> None:
            listeners = self._listeners.get(channel, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(channel, None)

        return stop

    def deliver(self, channel: str, payload: bytes) -> None:
        for listener in list(self._listeners.get(channel, ())):
            try:
                listener(payload)
            except Exception:  # one broken listener must not starve the others
                logger.exception("a listener of %s failed", channel)

    def count(self, key: str, delta: int) -> None:
        self.interest[key] += delta
        if self.interest[key] <= 0:
            del self.interest[key]


class MemoryBus:
    """The bus of a single process: delivery is a function call."""

    kind = "memory"

    def __init__(self) -> None:
        self._local = LocalListeners()

    async def start(self) -> None:
        """Nothing to connect."""

    async def publish(self, channel: str, payload: bytes) -> None:
        self._local.deliver(channel, payload)

    def listen(self, channel: str, listener: Listener) -> Callable[[], None]:
        return self._local.listen(channel, listener)

    async def add_interest(self, key: str) -> None:
        self._local.count(key, 1)

    async def drop_interest(self, key: str) -> None:
        self._local.count(key, -1)

    async def interest(self, prefix: str) -> dict[str, int]:
        return {k: n for k, n in self._local.interest.items() if k.startswith(prefix)}

    async def close(self) -> None:
        """Nothing to close."""


def open_bus(url: str | None) -> Bus:
    """The bus of a `redis_url`: Redis pub/sub across replicas, or without one this process."""
    if url is not None and messaging_backend(url) == "redis":
        from roost.backends.bus.redis import RedisBus

        return RedisBus(url)
    return MemoryBus()


class Wakeup:
    """A listener on one channel from the moment it is made, so that a caller can check for
    work, then wait: a publish that comes between the check and the wait still wakes it."""

    def __init__(self, bus: Bus, channel: str) -> None:
        self._woken = asyncio.Event()
        self._stop = bus.listen(channel, lambda _: self._woken.set())

    async def wait(self, seconds: float) -> bool:
        """Wait for a publish since the last wait, or `seconds`; True if one came."""
        try:
            async with asyncio.timeout(seconds):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True

    def __enter__(self) -> Wakeup:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()
