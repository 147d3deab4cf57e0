"""`client.pubsub`: publish/subscribe on topics with AMQP wildcards (Synap pubsub)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._core.results import PubSubPublishResult, decode
from roost.client._realtime import AsyncSubscription
from roost.wire.pubsub import PubSubMessage

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncPubSub(Namespace):
    """Fire-and-forget messages on dot-separated topics; nothing is kept for later."""

    _client: AsyncClient

    async def publish(
        self, topic: str, message: Any, metadata: dict[str, str] | None = None
    ) -> PubSubPublishResult:
        """Send a message to every subscription whose patterns match `topic`.

        Example:
            await client.pubsub.publish("notifications.email.user", {"to": "a@example.com"})
        """
        params: dict[str, Any] = {"topic": topic, "message": message}
        if metadata:
            params["metadata"] = metadata
        return decode(await self._client.call("pubsub.publish", params), PubSubPublishResult)

    async def subscribe(
        self, patterns: list[str], callback: Callable[[str, Any], Any]
    ) -> AsyncSubscription:
        """Receive messages whose topic matches a pattern: `*` is exactly one word, `#` zero
        or more (`events.#`, `a.*.c`, `a.#.b`). `callback(topic, message)` may be async.

        Example:
            sub = await client.pubsub.subscribe(["orders.*.created"], lambda t, m: print(t, m))
        """

        def deliver(event: Any) -> Any:
            message = decode(event, PubSubMessage)
            return callback(message.topic, message.message)

        return await self._client.realtime.subscribe(
            "pubsub.subscribe", {"patterns": patterns}, deliver, ",".join(patterns)
        )
