"""Types of the pub/sub operations (Synap pubsub): AMQP-style topics and patterns."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from roost.wire.common import NoTruthValue
from roost.wire.queue import Headers

_WORD = r"[A-Za-z0-9_-]+"
_PATTERN_WORD = rf"(?:{_WORD}|\*|#)"

Topic = Annotated[str, Meta(min_length=1, max_length=255, pattern=rf"^{_WORD}(?:\.{_WORD})*$")]
Pattern = Annotated[
    str,
    Meta(min_length=1, max_length=255, pattern=rf"^{_PATTERN_WORD}(?:\.{_PATTERN_WORD})*$"),
]


class PubSubPublishRequest(Struct, forbid_unknown_fields=True):
    topic: Topic
    message: Any = None
    metadata: Annotated[Headers, Meta(max_length=64)] | None = None


class PubSubPublishAnswer(Struct, NoTruthValue):
    """`pubsub.publish` (the SDK's `PubSubPublishResult`): the message's id and how many
    subscriptions matched its topic."""

    message_id: str
    topic: str
    subscribers_matched: int


class PubSubMessage(Struct):
    message_id: str
    topic: str
    message: Any
    metadata: dict[str, str]
    timestamp: float


class PubSubSubscribeRequest(Struct, forbid_unknown_fields=True):
    patterns: Annotated[list[Pattern], Meta(min_length=1, max_length=100)]
