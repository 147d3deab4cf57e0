"""Frames of the WebSocket door (`/api/v1/ws`).

Client → server: `{"id", "method", "params"}` calls any operation (or a subscription:
`stream.subscribe`, `pubsub.subscribe`, `database.subscribe`; or `unsubscribe`);
`{"type": "cancel", "id"}` cancels the call of that id (a streamed operation stops, its
generator is closed; nothing more is sent for that id); `{"type": "ping"}` asks for a pong.
Server → client: `{"id", "result"}` or `{"id", "error", "request_id"}` (the id the server
logged the error under) answers a call; a streamed operation
answers `{"id", "chunk"}` per item, then `{"id", "end": true}`, or `{"id", "error"}` after the
items sent so far; `{"sub", "event"}` pushes an event of a subscription; `{"type": "pong"}`.
Text frames carry JSON, binary frames MessagePack; each answer uses the format of the frame it
answers. A frame may also carry an array of calls; a client that sends one gets its answers
and events in arrays as well, as many as are ready together (one frame instead of a hundred is
what makes 100 calls in flight cheap).
Calls in flight together run concurrently, in no set order: send a call that depends on
another once that one has answered.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

FrameId = int | Annotated[str, Meta(max_length=100)] | None


class CallFrame(Struct, forbid_unknown_fields=True):
    id: FrameId = None
    method: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    params: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b""))
    type: Annotated[str, Meta(max_length=20)] | None = None


class UnsubscribeRequest(Struct, forbid_unknown_fields=True):
    sub: Annotated[str, Meta(min_length=1, max_length=100)]


class Subscribed(Struct):
    sub: str


Frames = CallFrame | Annotated[list[CallFrame], Meta(min_length=1, max_length=1000)]
