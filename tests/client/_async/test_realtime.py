"""Streams, pub/sub and calls over the SDK's realtime connection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    SecureTableError,
    StreamEvent,
    TableChange,
    ValidationError,
)
from tests.client._async.calls import Call, wait_until
from tests.conftest import RunningServer, unique


@pytest.mark.anyio
async def test_stream_subscription_replays_then_follows(
    server: RunningServer, admin_token: str
) -> None:
    room = unique("room")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        for n in range(3):
            published = await admin.stream.publish(room, "msg", {"n": n}, {"by": "test"})
            assert published.offset == n
        received: list[StreamEvent] = []

        async def on_event(event: StreamEvent) -> None:  # async callbacks are awaited
            received.append(event)

        sub = await admin.stream.subscribe(room, on_event, from_offset=-2)
        assert sub.room == room
        await wait_until(lambda: len(received) == 2)
        result = await admin.stream.publish(room, "msg", {"n": 3})
        assert result.subscribers_notified == 1
        await wait_until(lambda: len(received) == 3)
        assert [e.offset for e in received] == [1, 2, 3]
        assert (received[0].data, received[0].metadata, received[0].room) == (
            {"n": 1},
            {"by": "test"},
            room,
        )
        await sub.unsubscribe()
        await sub.unsubscribe()  # twice is harmless
        assert (await admin.stream.publish(room, "msg", 4)).subscribers_notified == 0

        plain: list[int] = []
        live = await admin.stream.subscribe(room, lambda e: plain.append(e.offset))
        await admin.stream.publish(room, "msg", 5)
        await wait_until(lambda: plain == [5])  # no from_offset: only what comes next
        await live.unsubscribe()


@pytest.mark.anyio
async def test_stream_history_and_retention(server: RunningServer, admin_token: str) -> None:
    room = unique("hist")
    async with AsyncClient(api_url=server.url) as client:
        stream = (await client.auth.sign_in_with_token(admin_token)).stream
        empty = await stream.history(room)
        assert (empty.events, empty.oldest_offset, empty.newest_offset) == ([], 0, -1)
        await stream.configure(room, max_events=5)
        for n in range(8):
            await stream.publish(room, "tick", n)
        history = await stream.history(room)
        assert [e.data for e in history.events] == [3, 4, 5, 6, 7]
        assert (history.oldest_offset, history.newest_offset) == (3, 7)
        assert [e.offset for e in (await stream.history(room, 4, 5)).events] == [4, 5]
        assert [e.offset for e in (await stream.history(room, -2)).events] == [6, 7]


@pytest.mark.anyio
async def test_pubsub_delivers_by_pattern(server: RunningServer, admin_token: str) -> None:
    base = unique("shop")
    async with AsyncClient(api_url=server.url) as client:
        pubsub = (await client.auth.sign_in_with_token(admin_token)).pubsub
        got: list[tuple[str, Any]] = []
        sub = await pubsub.subscribe(
            [f"{base}.*.created", f"{base}.#.eu"], lambda topic, msg: got.append((topic, msg))
        )
        assert (await pubsub.publish(f"{base}.order.created", {"id": 1})).subscribers_matched == 1
        assert (await pubsub.publish(f"{base}.order.x.eu", "eu")).subscribers_matched == 1
        assert (await pubsub.publish(f"{base}.order.x.us", "us")).subscribers_matched == 0
        await wait_until(lambda: len(got) == 2)
        assert got == [(f"{base}.order.created", {"id": 1}), (f"{base}.order.x.eu", "eu")]
        await sub.unsubscribe()
        assert (await pubsub.publish(f"{base}.order.created", 2)).subscribers_matched == 0


@pytest.mark.anyio
async def test_realtime_calls_and_refusals(server: RunningServer, admin_token: str) -> None:
    key = unique("rt")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        connected: list[bool] = []
        admin.on("connected", lambda: connected.append(True))
        assert await admin.realtime.call("kv.set", {"key": key, "value": 1}) == {"success": True}
        assert (await admin.realtime.call("kv.get", {"key": key}))["value"] == 1
        assert connected == [True]
        with pytest.raises(ValidationError):
            await admin.realtime.call("kv.get", {"key": ""})
        with pytest.raises(ValidationError):
            await admin.pubsub.subscribe(["bad..pattern"], print)
        with pytest.raises(ValidationError):
            await admin.stream.publish("", "x", 1)
        with pytest.raises(ValueError, match="unknown event"):
            admin.on("exploded", print)  # type: ignore[arg-type]
        reader = await admin.api_keys.create(unique("r"), ["stream:read"])
        limited = await client.auth.sign_in_with_token(reader["key"], "api_key")
        with pytest.raises(AuthorizationError):
            await limited.stream.publish("room", "x", 1)
        with pytest.raises(AuthorizationError):
            await limited.pubsub.subscribe(["a.#"], print)


@pytest.mark.anyio
async def test_database_subscribe_delivers_changes_in_order(
    server: RunningServer, admin_token: str
) -> None:
    table, secret = unique("orders"), unique("secret")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.schema.add_table(table, [{"name": "item", "type": "text"}])
        changes: list[TableChange] = []
        deletes: list[TableChange] = []
        sub = await admin.database.subscribe(table, changes.append)
        await admin.database.subscribe(table, deletes.append, events=["delete"])
        created = await admin.database.bulk_insert(table, [{"item": "a"}, {"item": "b"}])
        first_id = created[0]["id"]
        await admin.database.update(table, record_id=first_id, data={"item": "a2"})
        await admin.database.delete(table, record_id=first_id)
        await wait_until(lambda: len(changes) == 4 and len(deletes) == 1)
        assert [(c.type, c.record.get("item")) for c in changes] == [
            ("insert", "a"),
            ("insert", "b"),
            ("update", "a2"),
            ("delete", None),
        ]
        assert deletes[0].record == {"id": first_id}
        assert changes[0].table == table
        assert sub.room == table
        replayed: list[TableChange] = []
        await admin.database.subscribe(table, replayed.append, from_offset=-2)
        await wait_until(lambda: len(replayed) == 2)
        assert [c.type for c in replayed] == ["update", "delete"]

        await admin.schema.add_table(secret, [{"name": "ssn", "type": "text"}], secure=True)
        with pytest.raises(SecureTableError):
            await admin.database.subscribe(secret, print)
        with pytest.raises(NotFoundError):
            await admin.database.subscribe(unique("missing"), print)
        with pytest.raises(ValidationError):
            await admin.database.subscribe(table, print, events=["truncate"])


@pytest.mark.anyio
async def test_stream_and_pubsub_refusals(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        too_big = "x" * (1024 * 1024 + 10)
        refused: dict[str, list[Call]] = {
            "room": [
                lambda: admin.stream.publish("", "t", 1),
                lambda: admin.stream.publish("r" * 201, "t", 1),
                lambda: admin.stream.publish("no spaces", "t", 1),
                lambda: admin.stream.history("$db:orders"),  # the change feeds' rooms
            ],
            "event_type": [lambda: admin.stream.publish("room", "", 1)],
            "data": [lambda: admin.stream.publish("room", "t", too_big)],
            "limit": [lambda: admin.stream.history("room", limit=0)],
            "topic": [
                lambda: admin.pubsub.publish("", 1),
                lambda: admin.pubsub.publish("t" * 256, 1),
                lambda: admin.pubsub.publish("a..b", 1),
                lambda: admin.pubsub.publish("orders.*", 1),  # wildcards only in patterns
            ],
            "message": [lambda: admin.pubsub.publish("a.b", too_big)],
            "patterns": [
                lambda: admin.pubsub.subscribe([], print),
                lambda: admin.pubsub.subscribe(["a.b*"], print),
                lambda: admin.pubsub.subscribe(["a..b"], print),
            ],
        }
        for field, calls in refused.items():
            for call in calls:
                with pytest.raises(ValidationError) as caught:
                    await call()
                assert field in str(caught.value), caught.value


@pytest.mark.anyio
async def test_the_realtime_connection_speaks_msgpack_too(
    server: RunningServer, admin_token: str
) -> None:
    room = unique("packed")
    async with AsyncClient(api_url=server.url, format="msgpack") as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        got: list[StreamEvent] = []
        await admin.stream.subscribe(room, got.append)
        assert (await admin.realtime.call("kv.set", {"key": room, "value": [1, "x"]}))["success"]
        assert (await admin.realtime.call("kv.get", {"key": room}))["value"] == [1, "x"]
        await admin.stream.publish(room, "bin", {"bytes": "ok"})
        await wait_until(lambda: len(got) == 1)
        assert got[0].data == {"bytes": "ok"}


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Threads switch every microsecond. The test server runs in a thread of this process, so
    the client often reads the server's acceptance of a connection before the refusal frame
    that follows it: the race that turned a refused key into a ConnectionError, made common
    without any sleep."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.anyio
async def test_a_bad_api_key_on_the_realtime_connection_is_an_authentication_error_every_time(
    server: RunningServer, frequent_thread_switches: None
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        for attempt in range(75):
            calling = await client.auth.sign_in_with_token(f"rak_default_{attempt}_no", "api_key")
            with pytest.raises(AuthenticationError) as call_refused:
                await calling.realtime.call("auth.whoami")
            subscribing = await client.auth.sign_in_with_token("not-a-key", "api_key")
            with pytest.raises(AuthenticationError) as subscription_refused:
                await subscribing.stream.subscribe("room", print)
            assert call_refused.value.code == "invalid_credentials"
            assert subscription_refused.value.code == "invalid_credentials"
