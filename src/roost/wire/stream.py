"""Types of the event stream operations (Synap stream)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from roost.wire.common import NoTruthValue
from roost.wire.queue import Headers

RoomName = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
EventType = Annotated[str, Meta(min_length=1, max_length=200)]
Offset = Annotated[int, Meta(ge=-1_000_000, le=2**62)]


class StreamPublishRequest(Struct, forbid_unknown_fields=True):
    room: RoomName
    event_type: EventType
    data: Any = None
    metadata: Annotated[Headers, Meta(max_length=64)] | None = None


class StreamPublishAnswer(Struct, NoTruthValue):
    """`stream.publish` (the SDK's `StreamPublishResult`): the event's id and offset, and
    how many subscribers it reached."""

    event_id: str
    offset: int
    subscribers_notified: int


class HistoryRequest(Struct, forbid_unknown_fields=True):
    room: RoomName
    from_offset: Offset | None = None
    to_offset: Annotated[int, Meta(ge=0)] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class StreamEvent(Struct):
    """An event of a stream room; `offset` is its place in the room (0, 1, 2, ...)."""

    event_id: str
    offset: int
    event_type: str
    data: Any
    metadata: dict[str, str]
    timestamp: float
    room: str = ""


class HistoryAnswer(Struct, NoTruthValue):
    """`stream.history` (the SDK's `HistoryResult`): events in offset order, and the room's
    oldest and newest offsets (an empty room has oldest = newest + 1)."""

    events: list[StreamEvent]
    oldest_offset: int
    newest_offset: int


class RetentionRequest(Struct, forbid_unknown_fields=True):
    room: RoomName
    max_events: Annotated[int, Meta(ge=1, le=10_000_000)]
    max_age: Annotated[int, Meta(ge=1)] | None = None


class StreamSubscribeRequest(Struct, forbid_unknown_fields=True):
    room: RoomName
    from_offset: Offset | None = None
    replay: bool = False
