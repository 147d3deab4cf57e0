"""Subscription events as WebSocket frames, each event encoded once whoever it goes to.

An event of a room (a table's change, a stream event) reaches every feed of the room as the
same object (`services/stream.py` decodes an announcement once for all of them), and each feed
pushes it to its own connection as `{"sub", "event"}`. Encoding the whole frame per subscriber
encoded the event a hundred times for a hundred subscribers; here it is encoded once per wire
format and each frame wraps those bytes (`msgspec.Raw`) with the subscriber's own `sub`. The
filtering and the policy checks stay per subscriber: only what a feed admits is pushed.

The encodings are kept for the most recently pushed events, a bounded number and bytes of them
(an event's object is held meanwhile, so that its id names no other object).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

from roost.wire.codec import Codec

_KEPT_EVENTS = 256
_KEPT_BYTES = 8 * 1024 * 1024
_frame_encoders: dict[str, msgspec.json.Encoder | msgspec.msgpack.Encoder] = {
    "json": msgspec.json.Encoder(),
    "msgpack": msgspec.msgpack.Encoder(),
}


class Encodings:
    """The encodings of the events pushed lately, by event object and wire format."""

    def __init__(self, events: int = _KEPT_EVENTS, size: int = _KEPT_BYTES) -> None:
        self._kept: OrderedDict[int, tuple[Any, dict[str, bytes]]] = OrderedDict()
        self._events, self._size, self._bytes = events, size, 0

    def of(self, event: Any, codec: Codec) -> bytes:
        """`codec.encode(event)`, computed once while the event is among the recent ones."""
        kept = self._kept.get(id(event))
        if kept is None or kept[0] is not event:
            kept = (event, {})
            self._kept[id(event)] = kept
        data = kept[1].get(codec.format)
        if data is None:
            data = kept[1][codec.format] = codec.encode(event)
            self._bytes += len(data)
            self._trim()
        return data

    def _trim(self) -> None:
        while self._kept and (len(self._kept) > self._events or self._bytes > self._size):
            _, (_, encoded) = self._kept.popitem(last=False)
            self._bytes -= sum(len(data) for data in encoded.values())


_encodings = Encodings()


def event_frame(codec: Codec, sub: str, event: Any) -> bytes:
    """The frame `{"sub": sub, "event": event}` in `codec`'s format, the event's bytes shared
    with every other subscriber's frame of it."""
    encoder = _frame_encoders[codec.format]
    return encoder.encode({"sub": sub, "event": msgspec.Raw(_encodings.of(event, codec))})
