"""Work queues: one protocol, SQL tables (embedded default) or Redis (`ROOST_REDIS_URL`).

A message is *ready* (deliverable once its delay has passed), *in flight* (claimed by a consumer
until its ack deadline) or *dead* (in the dead-letter queue). A claim first returns every
in-flight message whose deadline has passed to ready (or to dead after `max_deliveries`), so a
consumer that died never loses a message. Queue names given to a store are already namespaced
by the service (`<tenant>:<queue>`). Bodies are JSON text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

from roost.backends import messaging_backend

if TYPE_CHECKING:
    from roost.backends.sql import Database

DEFAULT_MAX_DELIVERIES = 5

NackAction = Literal["requeued", "dead_lettered"]


class Delivery(msgspec.Struct, frozen=True):
    """A message as a consumer (or the dead-letter list) sees it."""

    id: str
    body: str  # JSON text
    priority: int
    headers: dict[str, str]
    retry_count: int  # deliveries before this one
    published_at: float


class QueueCounts(msgspec.Struct, frozen=True):
    ready: int
    delayed: int
    in_flight: int
    dead: int


class QueueStore(Protocol):
    kind: str

    async def publish(
        self, queue: str, body: str, *, priority: int, headers: dict[str, str], delay: float
    ) -> tuple[str, int]:
        """Enqueue a message; returns its id and how many ready messages are ahead of it."""
        ...

    async def claim(self, queue: str, ack_deadline: float) -> Delivery | None:
        """The highest-priority, oldest deliverable message, now in flight until
        `ack_deadline` seconds from now; None when there is none (this call never waits)."""
        ...

    async def ack(self, queue: str, message_id: str) -> bool:
        """Remove an in-flight message for good; False if it is not in flight."""
        ...

    async def nack(self, queue: str, message_id: str, *, requeue: bool) -> NackAction | None:
        """Give an in-flight message back: to ready (if `requeue` and it has deliveries left)
        or to the dead-letter queue. None if the message is not in flight."""
        ...

    async def extend(self, queue: str, message_id: str, seconds: float) -> bool:
        """Move an in-flight message's deadline to `seconds` from now; False if not in flight."""
        ...

    async def counts(self, queue: str) -> QueueCounts: ...

    async def purge(self, queue: str) -> int:
        """Drop every ready and delayed message (in-flight and dead ones stay)."""
        ...

    async def dead_letters(self, queue: str, limit: int) -> list[Delivery]: ...

    async def replay(self, queue: str, message_ids: list[str] | None, limit: int) -> int:
        """Move dead letters back to ready, at most `limit` of them, oldest first: those of
        `message_ids`, or with None any. Ids that are not dead letters of this queue (never
        existed, replayed or deleted already, another queue's) are skipped, and an id named
        twice counts once. A replayed message starts afresh: no deliveries yet (its full
        `max_deliveries` again, `retry_count` 0 on its next delivery), its body, headers,
        priority and place in publish order kept; it is deliverable at once. Each message
        moves alone and atomically, so replays racing for the same one move it once.
        Returns how many this call moved."""
        ...

    async def delete_dead_letters(self, queue: str, message_ids: list[str] | None) -> int:
        """Drop dead letters for good: those of `message_ids` (ids that are not dead letters
        of this queue are skipped), or with None every one. Messages in other states stay.
        Returns how many this call dropped."""
        ...

    async def configure(self, queue: str, max_deliveries: int) -> None:
        """Set how many deliveries a message of this queue gets before it is dead-lettered
        (applies to messages published from now on)."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every queue whose name starts with `prefix` (a tenant's, when it is
        deleted): its messages in every state and its settings. With no such queue it is a
        no-op, so a purge that was interrupted can simply run again."""
        ...

    async def close(self) -> None: ...


def open_queue_store(url: str | None, db: Database) -> QueueStore:
    """The queue store of a `redis_url`: Redis, or without one the tables of `db`."""
    if url is not None and messaging_backend(url) == "redis":
        from roost.backends.queue.redis import RedisQueueStore

        return RedisQueueStore(url)
    from roost.backends.queue.sql import SqlQueueStore

    return SqlQueueStore(db)
