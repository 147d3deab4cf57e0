"""`client.stream`: event streams, rooms of ordered events with history (Synap stream).

Called, it is DotDo's streamed call instead: `client.stream(method, params)` is
`client.rpc.stream(method, params)`, so code written for either SDK reads the same.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._core.results import HistoryResult, StreamEvent, StreamPublishResult, decode
from roost.client._realtime import AsyncSubscription

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncStream(Namespace):
    """Rooms of events with dense offsets; subscribe live, resume, or read the history.
    Called like a function, it runs a streamed operation over the RPC pool (DotDo)."""

    _client: AsyncClient

    def __call__(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[Any, None]:
        """DotDo's `client.stream(method, params)`: the items of a streamed operation or
        function, in order, over the RPC pool; the same as `client.rpc.stream`. Leaving the
        loop early cancels the call on the server.

        Example:
            async for chunk in client.stream("database.export", {"table": "orders"}):
                print(chunk)
        """
        return self._client.rpc.stream(method, params, timeout=timeout)

    async def publish(
        self, room: str, event_type: str, data: Any, metadata: dict[str, str] | None = None
    ) -> StreamPublishResult:
        """Append an event to a room and push it to its subscribers.

        Example:
            result = await client.stream.publish("chat-1", "message", {"text": "hi"})
        """
        params: dict[str, Any] = {"room": room, "event_type": event_type, "data": data}
        if metadata:
            params["metadata"] = metadata
        return decode(await self._client.call("stream.publish", params), StreamPublishResult)

    async def history(
        self,
        room: str,
        from_offset: int | None = None,
        to_offset: int | None = None,
        limit: int = 100,
    ) -> HistoryResult:
        """Events by offset, oldest first (`from_offset` < 0: the last N).

        Example:
            last_50 = (await client.stream.history("chat-1", from_offset=-50)).events
        """
        params: dict[str, Any] = {"room": room, "limit": limit}
        if from_offset is not None:
            params["from_offset"] = from_offset
        if to_offset is not None:
            params["to_offset"] = to_offset
        answer = await self._client.call("stream.history", params, idempotent=True)
        return decode(answer, HistoryResult)

    async def subscribe(
        self,
        room: str,
        callback: Callable[[StreamEvent], Any],
        from_offset: int | None = None,
        replay: bool = False,
    ) -> AsyncSubscription:
        """Receive a room's events as they are published, in offset order. `from_offset`
        starts there first (negative: the last N); `replay` without it starts at the oldest
        event kept. The callback may be a plain or an async function. After a reconnect the
        subscription resumes after the last event received: nothing is missed or repeated.

        Example:
            sub = await client.stream.subscribe("chat-1", print, from_offset=-50)
            ...
            await sub.unsubscribe()
        """
        params: dict[str, Any] = {"room": room, "replay": replay}
        if from_offset is not None:
            params["from_offset"] = from_offset
        return await self._client.realtime.subscribe(
            "stream.subscribe", params, lambda event: callback(decode(event, StreamEvent)), room
        )

    async def configure(self, room: str, *, max_events: int, max_age: int | None = None) -> None:
        """A room's retention: at most `max_events` events, none older than `max_age` s.

        Example:
            await client.stream.configure("chat-1", max_events=10_000, max_age=86400)
        """
        params = {"room": room, "max_events": max_events, "max_age": max_age}
        await self._client.call("stream.configure", params, idempotent=True)
