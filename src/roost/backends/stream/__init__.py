"""Event streams: an append-only log per room with dense offsets (0, 1, 2, ...).

One protocol, SQL tables (embedded default) or Redis (`ROOST_REDIS_URL`). Room names given to a
store are already namespaced by the service (`<tenant>:<room>`). Retention drops the oldest
events past a room's `max_events` or `max_age`; offsets never restart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import msgspec

from roost.backends import messaging_backend

if TYPE_CHECKING:
    from roost.backends.sql import Database


class StoredEvent(msgspec.Struct, frozen=True):
    id: str
    offset: int
    event_type: str
    data: str  # JSON text
    metadata: dict[str, str]
    timestamp: float


class NewEvent(msgspec.Struct, frozen=True):
    event_type: str
    data: str  # JSON text
    metadata: dict[str, str]


class Page(msgspec.Struct, frozen=True):
    """Events of a room in offset order, with the oldest retained and newest offsets
    (an empty room has oldest = newest + 1)."""

    events: list[StoredEvent]
    oldest: int
    newest: int


class Retention(msgspec.Struct, frozen=True):
    max_events: int
    max_age: float | None
    """seconds; a room's own retention (`configure`) keeps whole ones, rounded up"""

    @property
    def whole_max_age(self) -> int | None:
        return None if self.max_age is None else math.ceil(self.max_age)


class StreamStore(Protocol):
    kind: str

    async def append(
        self, room: str, events: list[NewEvent], default_retention: Retention
    ) -> list[StoredEvent]:
        """Add events at the room's next offsets (one atomic step), then apply its retention
        (the room's own, if configured, else `default_retention`)."""
        ...

    async def read(
        self, room: str, from_offset: int, to_offset: int | None, limit: int, *, live: bool = False
    ) -> Page:
        """Up to `limit` events with `from_offset <= offset <= to_offset` (no upper bound when
        None). A negative `from_offset` means the last `-from_offset` events. `live` marks
        the reads of live feeds: a store with connections of its own keeps them apart (and
        bounded), so that a burst of subscriptions cannot take the connections calls need."""
        ...

    async def configure(self, room: str, retention: Retention) -> None: ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every room whose name starts with `prefix` (a tenant's, when it is deleted):
        its events, its offsets (a room made again starts at 0) and its retention. With no
        such room it is a no-op, so a purge that was interrupted can simply run again."""
        ...

    async def close(self) -> None: ...


def open_stream_store(url: str | None, db: Database) -> StreamStore:
    """The stream store of a `redis_url`: Redis, or without one the tables of `db`."""
    if url is not None and messaging_backend(url) == "redis":
        from roost.backends.stream.redis import RedisStreamStore

        return RedisStreamStore(url)
    from roost.backends.stream.sql import SqlStreamStore

    return SqlStreamStore(db)
