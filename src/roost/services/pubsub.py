"""Pub/sub, per tenant: topics of dot-separated words, patterns with AMQP wildcards.

`*` stands for exactly one word and `#` for zero or more, anywhere in a pattern: `a.*` matches
`a.b`, `#` matches every topic, and `a.#.b` matches `a.b`, `a.x.b` and `a.x.y.b`. Messages are
not kept: a subscriber receives what is published while it is subscribed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import msgspec

from roost.services.context import Context
from roost.services.feeds import Feed, Push, opening
from roost.services.payloads import json_text
from roost.services.registry import operation, subscription
from roost.wire.pubsub import (
    PubSubMessage,
    PubSubPublishAnswer,
    PubSubPublishRequest,
    PubSubSubscribeRequest,
)

_SEPARATOR = "\x1f"  # joins the patterns of one subscription in its interest key


def topic_matches(pattern: Sequence[str], topic: Sequence[str]) -> bool:
    """Whether a topic (its words) matches a pattern (its words), AMQP topic rules."""

    def closure(states: set[int]) -> set[int]:
        # `#` may match zero words: from a `#` the next pattern word is reachable at once
        pending, reached = list(states), set(states)
        while pending:
            i = pending.pop()
            if i < len(pattern) and pattern[i] == "#" and i + 1 not in reached:
                reached.add(i + 1)
                pending.append(i + 1)
        return reached

    states = closure({0})
    for word in topic:
        moved = set()
        for i in states:
            if i < len(pattern):
                if pattern[i] == "#":
                    moved.add(i)
                elif pattern[i] in ("*", word):
                    moved.add(i + 1)
        states = closure(moved)
        if not states:
            return False
    return len(pattern) in states


def _channel(ctx: Context) -> str:
    return f"pubsub:{ctx.tenant}"


@operation("pubsub.publish", scope="pubsub:write")
async def publish(ctx: Context, params: PubSubPublishRequest) -> PubSubPublishAnswer:
    """Send a message to every subscriber whose patterns match the topic."""
    platform = ctx.platform
    json_text(params.message, "message", platform.settings.message_max_bytes)
    message = PubSubMessage(
        message_id=secrets.token_hex(12),
        topic=params.topic,
        message=params.message,
        metadata=params.metadata or {},
        timestamp=time.time(),
    )
    prefix = _channel(ctx) + ":"
    interest = await platform.bus.interest(prefix)
    await platform.bus.publish(_channel(ctx), msgspec.json.encode(message))
    words = params.topic.split(".")
    matched = sum(
        count
        for key, count in interest.items()
        if any(topic_matches(p.split("."), words) for p in key[len(prefix) :].split(_SEPARATOR))
    )
    return PubSubPublishAnswer(
        message_id=message.message_id, topic=params.topic, subscribers_matched=matched
    )


@subscription("pubsub.subscribe", scope="pubsub:read", event=PubSubMessage)
async def open_pubsub_feed(ctx: Context, params: PubSubSubscribeRequest, push: Push) -> Feed:
    """A live feed of the messages whose topic matches any of the patterns."""
    bus, patterns = ctx.platform.bus, [p.split(".") for p in params.patterns]
    interest_key = f"{_channel(ctx)}:{_SEPARATOR.join(sorted(set(params.patterns)))}"

    def deliver(raw: bytes) -> None:
        message = msgspec.json.decode(raw, type=PubSubMessage)
        words = message.topic.split(".")
        if any(topic_matches(p, words) for p in patterns):
            push(message)

    async with opening() as feed:
        feed.on_close(bus.listen(_channel(ctx), deliver))
        feed.on_close(lambda: bus.drop_interest(interest_key))  # as many drops as adds
        await bus.add_interest(interest_key)
    return feed
