"""The realtime connection survives a network cut: it reconnects, resubscribes and resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roost import AsyncClient, AuthenticationError, StreamEvent, TableChange
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.proxy import FlakyProxy
from tests.waiting import wait_for, wait_until

pytestmark = pytest.mark.anyio

LAST = "last"
"""The type of a room's last event: once it has come, every event before it has, and so would
any repeat of one (feeds deliver in offset order; after it, the SDK drops what is not newer)."""


async def test_a_cut_connection_resumes_streams_without_gap_or_repeat(
    server: RunningServer, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy, room, topic = flaky_proxy(server.url), unique("room"), unique("t")
    async with (
        AsyncClient(api_url=proxy.url) as cut_off,
        AsyncClient(api_url=server.url) as direct,
    ):
        listener = await cut_off.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        publisher = await direct.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        hooks: list[str] = []
        listener.on("connected", lambda: hooks.append("connected"))
        listener.on("disconnected", lambda: hooks.append("disconnected"))
        events: list[StreamEvent] = []
        messages: list[object] = []
        await listener.stream.subscribe(room, events.append, replay=True)
        await listener.pubsub.subscribe([f"{topic}.#"], lambda _, message: messages.append(message))
        for n in range(5):
            await publisher.stream.publish(room, "before", n)
        await wait_until(lambda: len(events) == 5)

        proxy.cut_all()
        await wait_until(lambda: "disconnected" in hooks)
        for n in range(5, 10):  # published while the listener is away
            await publisher.stream.publish(room, "during", n)
        await wait_until(lambda: hooks.count("connected") == 2)
        for n in range(10, 15):
            await publisher.stream.publish(room, "after", n)
        await publisher.stream.publish(room, LAST, 15)  # any repeat would come before it
        await wait_until(lambda: LAST in (e.event_type for e in events))
        assert [e.offset for e in events] == list(range(16))  # no gap, no repeat
        assert [e.data for e in events] == list(range(16))

        # pub/sub keeps no history, but the subscription itself is restored
        result = await publisher.pubsub.publish(f"{topic}.after", "hello")
        assert result.subscribers_matched == 1
        await wait_until(lambda: messages == ["hello"])


async def test_a_cut_connection_misses_no_table_change(
    server: RunningServer, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy, table = flaky_proxy(server.url), unique("items")
    async with (
        AsyncClient(api_url=proxy.url) as cut_off,
        AsyncClient(api_url=server.url) as direct,
    ):
        listener = await cut_off.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        writer = await direct.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await writer.schema.add_table(table, [{"name": "n", "type": "integer"}])
        hooks: list[str] = []
        listener.on("connected", lambda: hooks.append("connected"))
        changes: list[TableChange] = []
        await listener.database.subscribe(table, changes.append)
        await writer.database.insert(table, {"n": 0})
        await wait_until(lambda: len(changes) == 1)
        proxy.cut_all()
        for n in range(1, 4):  # while the listener is away: the table's interest lingers
            await writer.database.insert(table, {"n": n})
        await wait_until(lambda: hooks.count("connected") == 2)
        await writer.database.insert(table, {"n": 4})
        await writer.database.insert(table, {"n": -1})  # any repeat would come before it
        await wait_until(lambda: -1 in (c.record["n"] for c in changes))
        assert [c.record["n"] for c in changes] == [0, 1, 2, 3, 4, -1]


async def test_an_expired_access_token_is_renewed_without_losing_events(
    make_server: Callable[..., RunningServer],
) -> None:
    short = make_server(
        access_token_ttl=2, ws_credential_watch_seconds=0.2, ws_reidentify_seconds=0.1
    )
    room = unique("room")
    async with AsyncClient(api_url=short.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        hooks: list[str] = []
        admin.on("disconnected", lambda: hooks.append("disconnected"))
        events: list[StreamEvent] = []
        await admin.stream.subscribe(room, events.append, replay=True)
        await admin.stream.publish(room, "before", 0)
        # the token expires; the server's watch closes the socket
        await wait_until(lambda: "disconnected" in hooks)
        for n in range(1, 4):
            await admin.stream.publish(room, "after", n)
        assert await admin.realtime.call("auth.whoami") is not None
        await admin.stream.publish(room, LAST, 4)  # any repeat would come before it
        await wait_until(lambda: LAST in (e.event_type for e in events))
        assert [e.offset for e in events] == [0, 1, 2, 3, 4]


async def test_a_subscription_opened_after_the_token_expired_is_opened_with_a_fresh_one(
    make_server: Callable[..., RunningServer],
) -> None:
    # the server's watch is slow here: the subscribe meets the connection opened with the
    # expired token, and the server refuses it (a loaded machine met this between sign-in and
    # a first subscribe)
    short = make_server(access_token_ttl=2, ws_credential_watch_seconds=60)
    room = unique("room")
    async with AsyncClient(api_url=short.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert await admin.realtime.call("auth.whoami") is not None  # the connection opens
        await asyncio.sleep(2.5)  # the token it was opened with expires
        events: list[StreamEvent] = []
        await admin.stream.subscribe(room, events.append)
        await admin.stream.publish(room, "after", 0)
        await wait_until(lambda: len(events) == 1)


async def test_a_revoked_key_ends_its_subscriptions(server: RunningServer) -> None:
    room = unique("room")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        key = await admin.api_keys.create(unique("k"), ["stream:*"])
        holder = await client.auth.sign_in_with_token(key["key"], "api_key")
        errors: list[Exception] = []
        holder.on("error", errors.append)
        events: list[StreamEvent] = []
        await holder.stream.subscribe(room, events.append)
        await admin.stream.publish(room, "seen", 0)
        await wait_until(lambda: len(events) == 1)
        await admin.api_keys.revoke(key["id"])
        await wait_until(lambda: bool(errors), seconds=15)
        assert isinstance(errors[0], AuthenticationError)
        assert not holder.realtime.connected  # gone for good: nothing more can come

        async def nobody_listens() -> bool:  # the server lets go of the feed as the socket ends
            return (await admin.stream.publish(room, "unseen", 1)).subscribers_notified == 0

        await wait_for(nobody_listens)
        assert [e.offset for e in events] == [0]
