"""Synap's clients over the native SDK: `AsyncSynapClient` (and the generated `SynapClient`).

Its kv, queue, stream and pub/sub namespaces are Roost's own, which take Synap's names,
arguments and result types; what Synap does otherwise is written here: `kv.get` raises
`KeyNotFoundError` for a missing key, `queue.ack`/`nack` raise `QueueNotFoundError` and
`stream.history` `RoomNotFoundError` where Synap does (see `roost.compat._core.synap`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import msgspec

from roost.client._async.client import AsyncClient
from roost.client._async.kv import AsyncKV
from roost.client._async.pubsub import AsyncPubSub
from roost.client._async.queue import AsyncQueue
from roost.client._async.stream import AsyncStream
from roost.client._core.results import (
    BatchItemResult,
    GetResult,
    HistoryResult,
    NackResult,
    ScanResult,
)
from roost.client._realtime import Event
from roost.compat._core.synap import (
    ClientConfig,
    KeyNotFoundError,
    QueueNotFoundError,
    RoomNotFoundError,
    not_found_as,
)


class AsyncSynapKV(AsyncKV):
    """Roost's KV namespace with Synap's answer for a missing key."""

    async def get(self, key: str) -> GetResult:
        """`GetResult(found=True, value, ttl)`; KeyNotFoundError if there is no such key.

        Example:
            result = await client.kv.get("user:1001")
        """
        result = await super().get(key)
        if not result.found:
            raise KeyNotFoundError(f"no key {key!r}", details={"key": key})
        return result

    async def scan(
        self, prefix: str | None = None, cursor: str | None = None, count: int = 100
    ) -> ScanResult:
        """A page of keys under `prefix` (every key when None).

        Example:
            page = await client.kv.scan(prefix="user:", count=100)
        """
        return await super().scan(prefix or "", cursor, count)


class AsyncSynapQueue(AsyncQueue):
    """Roost's queue namespace; a message not in flight raises QueueNotFoundError."""

    async def ack(self, queue: str, message_id: str) -> None:
        """Done with a message (QueueNotFoundError if it is not in flight in `queue`).

        Example:
            await client.queue.ack("tasks", message.message_id)
        """
        with not_found_as(QueueNotFoundError):
            await super().ack(queue, message_id)

    async def nack(self, queue: str, message_id: str, requeue: bool = True) -> NackResult:
        """Give a message back (QueueNotFoundError if it is not in flight in `queue`).

        Example:
            await client.queue.nack("tasks", message.message_id, requeue=True)
        """
        with not_found_as(QueueNotFoundError):
            return await super().nack(queue, message_id, requeue)


class AsyncSynapStream(AsyncStream):
    """Roost's stream namespace; the history of a room never used raises RoomNotFoundError."""

    async def history(
        self,
        room: str,
        from_offset: int | None = None,
        to_offset: int | None = None,
        limit: int = 100,
    ) -> HistoryResult:
        """Events by offset, oldest first (RoomNotFoundError if the room never had one).

        Example:
            result = await client.stream.history("chat-room-1", limit=50)
        """
        result = await super().history(room, from_offset, to_offset, limit)
        if result.newest_offset < 0:  # offsets start at 0: no event was ever published
            raise RoomNotFoundError(f"no room {room!r}", details={"room": room})
        return result


class AsyncSynapClient:
    """A Synap client on Roost: `AsyncSynapClient(url=..., api_key=...)` or
    `AsyncSynapClient(ClientConfig(...))`; unset settings come from `SYNAP_*`, then `ROOST_*`.

    Example:
        async with AsyncSynapClient(url="http://127.0.0.1:8787", api_key=key) as client:
            await client.kv.set("user:1", {"name": "Alice"}, ttl=3600)
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        retry_max_delay: float | None = None,
        pool_size: int | None = None,
        keep_alive: bool | None = None,
        compression: bool | None = None,
        format: str | None = None,
        tenant: str | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "url": url,
            "api_key": api_key,
            "timeout": timeout,
            "retries": retries,
            "retry_delay": retry_delay,
            "retry_backoff": retry_backoff,
            "retry_max_delay": retry_max_delay,
            "pool_size": pool_size,
            "keep_alive": keep_alive,
            "compression": compression,
            "format": format,
        }
        settings = msgspec.structs.replace(
            config or ClientConfig(), **{name: v for name, v in given.items() if v is not None}
        )
        self.config = settings
        self._client = AsyncClient(tenant=tenant, **settings.native_options())

    @property
    def native(self) -> AsyncClient:
        """The Roost client underneath, for what Synap has no call for."""
        return self._client

    @cached_property
    def kv(self) -> AsyncSynapKV:
        """Values, counters and scans."""
        return AsyncSynapKV(self._client)

    @cached_property
    def queue(self) -> AsyncSynapQueue:
        """Work queues: publish, consume, ack and nack."""
        return AsyncSynapQueue(self._client)

    @cached_property
    def stream(self) -> AsyncSynapStream:
        """Rooms of events: publish, subscribe, history."""
        return AsyncSynapStream(self._client)

    @cached_property
    def pubsub(self) -> AsyncPubSub:
        """Topics with `*` and `#` wildcards."""
        return self._client.pubsub

    async def batch(self, commands: list[dict[str, Any]]) -> list[BatchItemResult]:
        """Run `[{"command": "kv.set", "payload": {...}}, ...]` in one round trip.

        Example:
            results = await client.batch([{"command": "kv.get", "payload": {"key": "a"}}])
        """
        return await self._client.batch(commands)

    def on(self, event: Event, handler: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """Call `handler` when the realtime connection is "connected", "disconnected" (with
        the reason) or on an "error" (with the exception); as a decorator or a call.

        Example:
            @client.on("disconnected")
            async def on_disconnected(reason: str) -> None: ...
        """

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            if event == "disconnected":
                realtime = self._client.realtime
                self._client.on(event, lambda: handler(realtime.disconnect_reason))
            else:
                self._client.on(event, handler)
            return handler

        return register if handler is None else register(handler)

    async def close(self) -> None:
        """Close the connections.

        Example:
            await client.close()
        """
        await self._client.close()

    async def __aenter__(self) -> AsyncSynapClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
