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
