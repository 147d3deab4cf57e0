"""Event streams, per tenant: rooms of events with dense offsets, history and live feeds.

A publish appends to the room's log (SQL or Redis) and then announces the event on the bus.
A live feed registers on the bus first, then reads the log from where it starts, and after
that delivers each announced event in offset order: an event it already delivered is skipped,
and a jump in offsets is filled from the log, so there is no gap and no duplicate even when
announcements from several replicas arrive out of order or are lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from roost.backends.stream import NewEvent, Retention, StoredEvent
from roost.services import guards
from roost.services.context import Context
from roost.services.feeds import Feed, Push, opening
from roost.services.payloads import from_json, json_text
from roost.services.policystore import policy_guard
from roost.services.registry import operation, subscription
from roost.wire.queue import Succeeded
from roost.wire.stream import (
    HistoryAnswer,
    HistoryRequest,
    RetentionRequest,
    StreamEvent,
    StreamPublishAnswer,
    StreamPublishRequest,
    StreamSubscribeRequest,
)

_PAGE = 500


def _room(ctx: Context, room: str) -> str:
    return f"{ctx.tenant}:{room}"


def _channel(name: str) -> str:
    return f"stream:{name}"


def _default_retention(ctx: Context) -> Retention:
    settings = ctx.platform.settings
    return Retention(settings.stream_max_events, settings.stream_max_age)


def _wire(event: StoredEvent, room: str, data: Any) -> StreamEvent:
    """The event as subscribers see it; `data` is its decoded JSON."""
    return StreamEvent(
        event_id=event.id,
        offset=event.offset,
        event_type=event.event_type,
        data=data,
        metadata=event.metadata,
        timestamp=event.timestamp,
        room=room,
    )


async def append(
    ctx: Context,
    room: str,
    events: list[tuple[str, Any, dict[str, str]]],
    retention: Retention | None = None,
) -> tuple[list[StoredEvent], int]:
    """Append `(event_type, data, metadata)` events to a room of the caller's tenant and
    announce them; returns them as stored and how many subscribers the room has."""
    platform, name = ctx.platform, _room(ctx, room)
    limit = platform.settings.message_max_bytes
    texts = [NewEvent(kind, json_text(data, "data", limit), meta) for kind, data, meta in events]
    stored, interest = await asyncio.gather(
        platform.streams.append(name, texts, retention or _default_retention(ctx)),
        platform.bus.interest(_channel(name)),
    )
    announced = [_wire(e, room, data) for e, (_, data, _) in zip(stored, events, strict=True)]
    await platform.bus.publish(_channel(name), msgspec.json.encode(announced))
    return stored, interest.get(_channel(name), 0)


def event_attr(event_type: str, data: Any, metadata: dict[str, str]) -> dict[str, Any]:
    """An event as a bound room's policies see it (`R.attr`)."""
    return {"event_type": event_type, "data": data, "metadata": metadata}


async def _readable(ctx: Context, room: str) -> Callable[[StreamEvent], bool] | None:
    """For a room bound to policies, whether the caller may `read` an event (the engine as
    it is now: a feed asks again at each event); None when the room is not bound."""
    guard = await policy_guard(ctx, "stream", room)
    if guard is None:
        return None
    return lambda event: guards.allows(
        ctx, guard, "read", event.event_id, event_attr(event.event_type, event.data, event.metadata)
    )


@operation("stream.publish", scope="stream:write")
async def publish(ctx: Context, params: StreamPublishRequest) -> StreamPublishAnswer:
    """Append an event to a room and push it to the room's live subscribers (in a room bound
    to policies, if the caller may `create` it)."""
    attr = event_attr(params.event_type, params.data, params.metadata or {})
    await guards.require(ctx, "stream", params.room, "create", "", attr, field="room")
    stored, subscribers = await append(
        ctx, params.room, [(params.event_type, params.data, params.metadata or {})]
    )
    return StreamPublishAnswer(
        event_id=stored[0].id, offset=stored[0].offset, subscribers_notified=subscribers
    )


@operation("stream.history", scope="stream:read", read_only=True)
async def history(ctx: Context, params: HistoryRequest) -> HistoryAnswer:
    """Events of a room by offset (`from_offset` < 0: the last N), oldest first (in a room
    bound to policies, those the caller may `read`)."""
    start = 0 if params.from_offset is None else params.from_offset
    page = await ctx.platform.streams.read(
        _room(ctx, params.room), start, params.to_offset, params.limit
    )
    events = [_wire(e, params.room, from_json(e.data)) for e in page.events]
    readable = await _readable(ctx, params.room)
    return HistoryAnswer(
        events=events if readable is None else [e for e in events if readable(e)],
        oldest_offset=page.oldest,
        newest_offset=page.newest,
    )


@operation("stream.configure", scope="stream:write")
async def configure(ctx: Context, params: RetentionRequest) -> Succeeded:
    """A room's retention: keep at most `max_events` events, none older than `max_age` s."""
    retention = Retention(params.max_events, params.max_age)
    await ctx.platform.streams.configure(_room(ctx, params.room), retention)
    return Succeeded()


_last_announced: tuple[bytes, list[StreamEvent]] | None = None


def _announced_events(raw: bytes) -> list[StreamEvent]:
    """The events of an announcement, decoded once for all the feeds of the room: the bus
    hands each listener the same bytes, one after another. The feeds share the event objects
    (none changes them), and the WebSocket door encodes each once (`server/pushed.py`)."""
    global _last_announced
    if _last_announced is not None and _last_announced[0] is raw:
        return _last_announced[1]
    events = msgspec.json.decode(raw, type=list[StreamEvent])
    _last_announced = (raw, events)
    return events


def _reader(ctx: Context, room: str) -> Callable[[StreamEvent], Awaitable[bool]]:
    async def wanted(event: StreamEvent) -> bool:
        readable = await _readable(ctx, room)  # unbound since: every event again
        return readable is None or readable(event)

    return wanted


@subscription("stream.subscribe", scope="stream:read", event=StreamEvent)
async def open_stream_feed(
    ctx: Context,
    params: StreamSubscribeRequest,
    push: Push,
    wanted: Callable[[StreamEvent], Awaitable[bool]] | None = None,
) -> Feed:
    """A live feed of a room. Without `from_offset` it starts after the newest event (or,
    with `replay`, at the oldest retained one); a negative `from_offset` means the last N.
    With `wanted`, only the events it accepts are pushed; in a room bound to policies, only
    those the subscriber may `read`, by the policies in force when each is delivered."""
    platform, name = ctx.platform, _room(ctx, params.room)
    if wanted is None:  # bound now or later: each event is checked as it is delivered
        wanted = _reader(ctx, params.room)
    channel = _channel(name)
    inbox: asyncio.Queue[StreamEvent] = asyncio.Queue()

    def announced(raw: bytes) -> None:
        for event in _announced_events(raw):
            inbox.put_nowait(event)

    async def deliver(event: StreamEvent) -> None:
        if wanted is None or await wanted(event):
            push(event)

    async def catch_up(start: int, upper: int | None) -> int:
        """Deliver the log from `start` to `upper`; returns the next offset to deliver."""
        while True:
            page = await platform.streams.read(name, start, upper, _PAGE, live=True)
            for event in page.events:
                await deliver(_wire(event, params.room, from_json(event.data)))
                start = event.offset + 1
            if len(page.events) < _PAGE:
                return max(start, page.oldest)  # skips what retention dropped

    async with opening() as feed:
        feed.on_close(platform.bus.listen(channel, announced))
        feed.on_close(lambda: platform.bus.drop_interest(channel))  # as many drops as adds
        await platform.bus.add_interest(channel)
        # Where to start is settled before the subscription is confirmed: an event published
        # after the confirmation must not be taken for one from before it.
        if params.from_offset is not None:
            start = params.from_offset
        else:
            newest = await platform.streams.read(name, -1, None, 1, live=True)
            start = newest.oldest if params.replay else newest.newest + 1

    async def follow() -> None:
        next_offset = await catch_up(start, None)
        while True:
            event = await inbox.get()
            if event.offset < next_offset:
                continue  # delivered already (from the log, or announced twice)
            if event.offset > next_offset:
                next_offset = await catch_up(next_offset, event.offset - 1)
            await deliver(event)
            next_offset = event.offset + 1

    feed.run(follow)
    return feed
