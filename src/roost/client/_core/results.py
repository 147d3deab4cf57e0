"""Small frozen result types (records themselves are plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """One operation of a `client.batch` call: `status` is "success" or "error"."""

    status: str
    payload: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True, slots=True)
class SetResult:
    """Whether `kv.set` stored the value (false when nx/xx said no)."""

    success: bool


@dataclass(frozen=True, slots=True)
class GetResult:
    """`kv.get`: whether the key exists, its value, and its ttl (-1: never expires)."""

    found: bool
    value: Any = None
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A page of `kv.scan`; pass `cursor` back while `has_more`."""

    keys: list[str]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class PublishResult:
    """`queue.publish`: the message's id and how many ready messages are ahead of it."""

    message_id: str
    position: int


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """A consumed message: ack it (or nack it) by `message_id` before its deadline."""

    message_id: str
    message: Any
    priority: int
    retry_count: int
    headers: dict[str, str]
    published_at: float


@dataclass(frozen=True, slots=True)
class NackResult:
    """`queue.nack`: `action` is "requeued" or "dead_lettered"."""

    success: bool
    action: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How many messages of a queue are ready, delayed, in flight and dead."""

    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead: int


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event of a stream room; `offset` is its place in the room (0, 1, 2, ...)."""

    event_id: str
    offset: int
    event_type: str
    data: Any
    metadata: dict[str, str]
    timestamp: float
    room: str = ""


@dataclass(frozen=True, slots=True)
class StreamPublishResult:
    """`stream.publish`: the event's id and offset, and how many subscribers it reached."""

    event_id: str
    offset: int
    subscribers_notified: int


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """`stream.history`: events in offset order, and the room's oldest and newest offsets
    (an empty room has oldest = newest + 1)."""

    events: list[StreamEvent]
    oldest_offset: int
    newest_offset: int


@dataclass(frozen=True, slots=True)
class PubSubPublishResult:
    """`pubsub.publish`: the message's id and how many subscriptions matched its topic."""

    message_id: str
    topic: str
    subscribers_matched: int


@dataclass(frozen=True, slots=True)
class TableChange:
    """A change of a table: `type` is "insert", "update" or "delete"; `record` is the row as
    stored (for a delete, only its primary key); `offset` orders the table's changes."""

    type: str
    table: str
    record: dict[str, Any]
    offset: int
    timestamp: float
