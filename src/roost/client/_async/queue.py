"""`client.queue`: work queues with priorities, ack deadlines and dead letters (Synap queue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._core.results import NackResult, PublishResult, QueueMessage, QueueStats, decode
from roost.client._realtime import AsyncSubscription
from roost.wire.queue import ConsumeAnswer, DeadLettersAnswer

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncQueue(Namespace):
    """At-least-once work queues, per tenant. A queue exists once something is published."""

    _client: AsyncClient

    async def publish(
        self,
        queue: str,
        message: Any,
        priority: int = 5,
        headers: dict[str, str] | None = None,
        delay: float | None = None,
    ) -> PublishResult:
        """Add a message (priority 0-9, 9 served first; `delay` seconds before it is served).

        Example:
            await client.queue.publish("emails", {"to": "a@example.com"}, priority=8)
        """
        params: dict[str, Any] = {"queue": queue, "message": message, "priority": priority}
        if headers:
            params["headers"] = headers
        if delay:
            params["delay"] = delay
        return decode(await self._client.call("queue.publish", params), PublishResult)

    async def consume(
        self,
        queue: str,
        timeout: float = 0,  # noqa: ASYNC109 - the seconds of a server-side long poll
        ack_deadline: float = 30,
    ) -> QueueMessage | None:
        """The next message, waiting up to `timeout` seconds; None if there is none. Ack it
        within `ack_deadline` seconds, or it is delivered again.

        Example:
            msg = await client.queue.consume("emails", timeout=10)
            if msg:
                await client.queue.ack("emails", msg.message_id)
        """
        params = {"queue": queue, "timeout": timeout, "ack_deadline": ack_deadline}
        answer = await self._client.call("queue.consume", params, wait=timeout)
        return decode(answer, ConsumeAnswer).message

    async def ack(self, queue: str, message_id: str) -> None:
        """Done with a message: it is removed for good (NotFoundError if it is not in flight).

        Example:
            await client.queue.ack("emails", msg.message_id)
        """
        await self._client.call("queue.ack", {"queue": queue, "message_id": message_id})

    async def nack(self, queue: str, message_id: str, requeue: bool = True) -> NackResult:
        """Give a message back: requeued while it has deliveries left, else dead-lettered.

        Example:
            result = await client.queue.nack("emails", msg.message_id)
        """
        params = {"queue": queue, "message_id": message_id, "requeue": requeue}
        return decode(await self._client.call("queue.nack", params), NackResult)

    async def extend(self, queue: str, message_id: str, seconds: float) -> None:
        """More time to process a message: its deadline becomes `seconds` from now.

        Example:
            await client.queue.extend("emails", msg.message_id, 60)
        """
        params = {"queue": queue, "message_id": message_id, "seconds": seconds}
        await self._client.call("queue.extend", params)

    async def stats(self, queue: str) -> QueueStats:
        """Counts of ready, delayed, in-flight and dead messages.

        Example:
            print((await client.queue.stats("emails")).ready)
        """
        answer = await self._client.call("queue.stats", {"queue": queue}, idempotent=True)
        return decode(answer, QueueStats)

    async def watch(self, queue: str, callback: Callable[[QueueStats], Any]) -> AsyncSubscription:
        """Receive a queue's stats now, then again each time they change (at once after a
        publish or a requeue, else within a second). The callback may be async.

        Example:
            sub = await client.queue.watch("emails", lambda s: print(s.ready, s.in_flight))
        """
        return await self._client.realtime.subscribe(
            "queue.watch",
            {"queue": queue},
            lambda stats: callback(decode(stats, QueueStats)),
            queue,
        )

    async def purge(self, queue: str) -> int:
        """Drop every ready and delayed message; returns how many.

        Example:
            await client.queue.purge("emails")
        """
        return int((await self._client.call("queue.purge", {"queue": queue}))["purged"])

    async def dead_letters(self, queue: str, limit: int = 100) -> list[QueueMessage]:
        """The messages that ran out of deliveries or were nacked without requeue.

        Example:
            for msg in await client.queue.dead_letters("emails"):
                print(msg.message, msg.retry_count)
        """
        params = {"queue": queue, "limit": limit}
        answer = await self._client.call("queue.dead_letters", params, idempotent=True)
        return decode(answer, DeadLettersAnswer).messages

    async def replay(
        self, queue: str, message_ids: list[str] | None = None, *, limit: int = 1000
    ) -> int:
        """Put dead letters back on the queue (oldest first, at most `limit`): those of
        `message_ids`, or with none named any. Each starts afresh, with `retry_count` 0 and
        every delivery again; ids that are not dead letters of the queue are skipped. Returns
        how many went back.

        Example:
            dead = await client.queue.dead_letters("emails")
            await client.queue.replay("emails", [msg.message_id for msg in dead])
        """
        params: dict[str, Any] = {"queue": queue, "limit": limit}
        if message_ids is not None:
            params["message_ids"] = message_ids
        return int((await self._client.call("queue.replay", params))["replayed"])

    async def delete_dead_letters(self, queue: str, message_ids: list[str] | None = None) -> int:
        """Drop dead letters for good: those of `message_ids`, or with none named every one.
        Returns how many went.

        Example:
            await client.queue.delete_dead_letters("emails", [msg.message_id])
        """
        params: dict[str, Any] = {"queue": queue}
        if message_ids is not None:
            params["message_ids"] = message_ids
        return int((await self._client.call("queue.delete_dead_letters", params))["deleted"])

    async def configure(self, queue: str, *, max_deliveries: int) -> None:
        """How many deliveries a message gets before the dead-letter queue (default 5).

        Example:
            await client.queue.configure("emails", max_deliveries=3)
        """
        params = {"queue": queue, "max_deliveries": max_deliveries}
        await self._client.call("queue.configure", params, idempotent=True)
