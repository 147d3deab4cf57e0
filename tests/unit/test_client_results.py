"""SDK results are the wire Structs: a field a newer server adds is ignored, a field that does
not fit raises ResponseError naming it. Both clients, over `httpx.MockTransport`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import roost
from roost import ResponseError
from roost.client._core.results import TableChange, decode
from roost.wire import kv, pubsub, queue, stream
from tests.unit.fake_server import FakeServer, ok, run

pytestmark = pytest.mark.anyio

Connect = Callable[..., Any]
NEW = {"added_by_a_newer_server": {"any": ["shape"]}}
MESSAGE = {
    "message_id": "m1",
    "message": {"to": "a@example.com"},
    "priority": 5,
    "retry_count": 0,
    "headers": {"h": "v"},
    "published_at": 1700000000,
    **NEW,
}
EVENT = {
    "event_id": "e1",
    "offset": 3,
    "event_type": "message",
    "data": {"text": "hi"},
    "metadata": {},
    "timestamp": 1700000000.5,
    "room": "chat-1",
    **NEW,
}


async def test_kv_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.set", ok({"success": True, **NEW}))
    server.answer("kv.get", ok({"found": True, "value": {"a": 1}, "ttl": 60, **NEW}))
    server.answer("kv.scan", ok({"keys": ["a", "b"], "cursor": "c", "has_more": True, **NEW}))
    client = connect(server)
    assert (await run(client.kv.set("k", 1))).success is True
    got = await run(client.kv.get("k"))
    assert (got.found, got.value, got.ttl) == (True, {"a": 1}, 60)
    assert await run(client.kv.ttl("k")) == 60
    page = await run(client.kv.scan("a"))
    assert (page.keys, page.cursor, page.has_more) == (["a", "b"], "c", True)


async def test_queue_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer("queue.publish", ok({"message_id": "m1", "position": 2, **NEW}))
    server.answer("queue.consume", ok({"message": MESSAGE, **NEW}), ok({"message": None, **NEW}))
    server.answer("queue.nack", ok({"success": True, "action": "requeued", **NEW}))
    stats = {"queue": "q", "ready": 1, "delayed": 2, "in_flight": 3, "dead": 4, **NEW}
    server.answer("queue.stats", ok(stats))
    server.answer("queue.dead_letters", ok({"messages": [MESSAGE], **NEW}))
    client = connect(server)
    published = await run(client.queue.publish("q", {"to": "a@example.com"}))
    assert (published.message_id, published.position) == ("m1", 2)
    message = await run(client.queue.consume("q"))
    assert (message.message_id, message.message, message.headers) == (
        "m1",
        {"to": "a@example.com"},
        {"h": "v"},
    )
    assert message.published_at == 1700000000.0
    assert await run(client.queue.consume("q")) is None
    nacked = await run(client.queue.nack("q", "m1"))
    assert (nacked.success, nacked.action) == (True, "requeued")
    counts = await run(client.queue.stats("q"))
    assert (counts.ready, counts.delayed, counts.in_flight, counts.dead) == (1, 2, 3, 4)
    [dead] = await run(client.queue.dead_letters("q"))
    assert (dead.message_id, dead.retry_count) == ("m1", 0)


async def test_stream_and_pubsub_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer(
        "stream.publish", ok({"event_id": "e1", "offset": 3, "subscribers_notified": 1, **NEW})
    )
    history = {"events": [EVENT], "oldest_offset": 0, "newest_offset": 3, **NEW}
    server.answer("stream.history", ok(history))
    server.answer(
        "pubsub.publish", ok({"message_id": "p1", "topic": "a.b", "subscribers_matched": 2, **NEW})
    )
    client = connect(server)
    sent = await run(client.stream.publish("chat-1", "message", {"text": "hi"}))
    assert (sent.event_id, sent.offset, sent.subscribers_notified) == ("e1", 3, 1)
    page = await run(client.stream.history("chat-1"))
    assert (page.oldest_offset, page.newest_offset) == (0, 3)
    [event] = page.events
    assert (event.offset, event.event_type, event.data, event.room) == (
        3,
        "message",
        {"text": "hi"},
        "chat-1",
    )
    published = await run(client.pubsub.publish("a.b", {"x": 1}))
    assert (published.message_id, published.topic, published.subscribers_matched) == (
        "p1",
        "a.b",
        2,
    )


def test_subscription_events_ignore_new_fields() -> None:
    event = decode(EVENT, roost.StreamEvent)
    assert (event.event_id, event.offset, event.timestamp) == ("e1", 3, 1700000000.5)
    message = {"message_id": "p1", "topic": "a.b", "message": 1, "metadata": {}, "timestamp": 1}
    assert decode({**message, **NEW}, pubsub.PubSubMessage).topic == "a.b"


async def test_an_answer_that_does_not_fit_raises_response_error_naming_the_field(
    connect: Connect,
) -> None:
    server = FakeServer()
    server.answer("kv.get", ok({"found": "yes"}))
    server.answer("queue.consume", ok({"message": {**MESSAGE, "priority": None}}))
    server.answer("stream.history", ok({"events": [EVENT], "oldest_offset": 0}))
    client = connect(server)
    with pytest.raises(ResponseError, match=r"\$\.found"):
        await run(client.kv.get("k"))
    with pytest.raises(ResponseError, match=r"\$\.message\.priority"):
        await run(client.queue.consume("q"))
    with pytest.raises(ResponseError, match="newest_offset"):
        await run(client.stream.history("chat-1"))


def test_result_types_are_the_wire_structs_exported_from_roost() -> None:
    pairs = {
        roost.SetResult: kv.SetAnswer,
        roost.GetResult: kv.GetAnswer,
        roost.ScanResult: kv.ScanAnswer,
        roost.PublishResult: queue.PublishAnswer,
        roost.QueueMessage: queue.QueueMessage,
        roost.NackResult: queue.NackAnswer,
        roost.QueueStats: queue.StatsAnswer,
        roost.StreamEvent: stream.StreamEvent,
        roost.StreamPublishResult: stream.StreamPublishAnswer,
        roost.HistoryResult: stream.HistoryAnswer,
        roost.PubSubPublishResult: pubsub.PubSubPublishAnswer,
    }
    for public, wire in pairs.items():
        assert public is wire
        assert issubclass(public, msgspec.Struct)
    assert roost.TableChange is TableChange
    # results still build by keyword, as user code and tests do
    assert roost.GetResult(found=False) == kv.GetAnswer(False, None, None)
