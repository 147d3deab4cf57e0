"""Subscription events are encoded once whoever they go to (`server/pushed.py`)."""

from __future__ import annotations

from roost.server.pushed import Encodings, event_frame
from roost.wire.codec import JSON, MSGPACK
from roost.wire.stream import StreamEvent


def event(offset: int, data: object = None) -> StreamEvent:
    record = {"id": offset, "name": "é", "data": data}
    return StreamEvent(
        event_id=f"e{offset}",
        offset=offset,
        event_type="insert",
        data={"table": "t", "record": record},
        metadata={"by": "x"},
        timestamp=1.5,
        room="$db:t",
    )


def test_a_frame_is_the_whole_frame_encoded_in_either_format() -> None:
    pushed = event(1)
    for codec in (JSON, MSGPACK):
        for sub in ("a1b2c3", 'quote"and\\'):
            assert event_frame(codec, sub, pushed) == codec.encode({"sub": sub, "event": pushed})


def test_the_same_event_is_encoded_once_per_format() -> None:
    encodings, pushed = Encodings(), event(1)
    first = encodings.of(pushed, JSON)
    assert encodings.of(pushed, JSON) is first  # the same bytes for every subscriber
    assert encodings.of(pushed, MSGPACK) == MSGPACK.encode(pushed)
    equal_but_another = event(1)
    assert encodings.of(equal_but_another, JSON) is not first
    assert encodings.of(equal_but_another, JSON) == first


def test_the_kept_encodings_are_bounded_in_count_and_bytes() -> None:
    encodings = Encodings(events=3, size=10_000)
    events = [event(n) for n in range(5)]
    kept = [encodings.of(e, JSON) for e in events]
    assert encodings.of(events[4], JSON) is kept[4]
    assert encodings.of(events[0], JSON) is not kept[0]  # the oldest went
    large = event(9, "x" * 20_000)
    encodings.of(large, JSON)
    assert encodings.of(events[4], JSON) is not kept[4]  # a large one pushed the rest out
