"""Work queues through the SDK, on the embedded store and on Redis replicas."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from roost import AsyncClient, AuthorizationError, NotFoundError, ValidationError
from tests.background import AsyncBackground
from tests.client._async.calls import Call, wait_until
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    RunningServer,
    unique,
)

pytestmark = pytest.mark.anyio


async def test_publish_consume_ack_nack_and_dead_letters(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("jobs")
    async with AsyncClient(api_url=server.url) as client:
        queue = (await client.auth.sign_in_with_token(admin_token)).queue
        await queue.configure(name, max_deliveries=2)
        await queue.publish(name, {"n": 1}, priority=1)
        urgent = await queue.publish(name, {"n": 2}, priority=9, headers={"source": "test"})
        assert urgent.position == 0
        msg = await queue.consume(name)
        assert msg is not None
        assert (msg.message, msg.headers, msg.retry_count) == ({"n": 2}, {"source": "test"}, 0)
        await queue.ack(name, msg.message_id)
        with pytest.raises(NotFoundError) as caught:
            await queue.ack(name, msg.message_id)
        assert caught.value.code == "message_not_found"
        low = await queue.consume(name)
        assert low is not None
        assert (await queue.nack(name, low.message_id)).action == "requeued"
        again = await queue.consume(name)
        assert again is not None
        assert (again.message_id, again.retry_count) == (low.message_id, 1)
        result = await queue.nack(name, again.message_id)
        assert (result.success, result.action) == (True, "dead_lettered")
        assert [m.message for m in await queue.dead_letters(name)] == [{"n": 1}]
        stats = await queue.stats(name)
        assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 1)
        assert await queue.consume(name) is None


async def test_delay_purge_and_the_deadline(server: RunningServer, admin_token: str) -> None:
    name = unique("later")
    async with AsyncClient(api_url=server.url) as client:
        queue = (await client.auth.sign_in_with_token(admin_token)).queue
        await queue.publish(name, "later", delay=60)
        await queue.publish(name, "now")
        assert (await queue.stats(name)).delayed == 1
        msg = await queue.consume(name, ack_deadline=0.2)
        assert msg is not None
        assert msg.message == "now"
        redelivered = await queue.consume(name, timeout=5)
        assert redelivered is not None
        assert (redelivered.message_id, redelivered.retry_count) == (msg.message_id, 1)
        await queue.ack(name, msg.message_id)
        assert await queue.purge(name) == 1
        assert (await queue.stats(name)).delayed == 0


async def test_queue_refusals(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        bad_calls: dict[str, list[Call]] = {
            "queue": [
                lambda: admin.queue.publish("", 1),
                lambda: admin.queue.publish("q" * 201, 1),
                lambda: admin.queue.publish("no spaces", 1),
                lambda: admin.queue.consume("{braces}"),
            ],
            "priority": [
                lambda: admin.queue.publish("q", 1, priority=10),
                lambda: admin.queue.publish("q", 1, priority=-1),
            ],
            "message": [lambda: admin.queue.publish("q", "x" * (1024 * 1024 + 10))],
            "ack_deadline": [lambda: admin.queue.consume("q", ack_deadline=0)],
            "timeout": [lambda: admin.queue.consume("q", timeout=61)],
        }
        for field, calls in bad_calls.items():
            for call in calls:
                with pytest.raises(ValidationError) as caught:
                    await call()
                assert field in str(caught.value), caught.value
        for refused in (
            lambda: admin.queue.ack("q", "no-such-id"),
            lambda: admin.queue.nack("q", "no-such-id"),
            lambda: admin.queue.extend("q", "no-such-id", 10),
        ):
            with pytest.raises(NotFoundError):
                await refused()
        key = await admin.api_keys.create(unique("pub"), ["queue:write", "queue:read"])
        publisher = await client.auth.sign_in_with_token(key["key"], "api_key")
        await publisher.queue.publish(unique("q"), 1)
        with pytest.raises(AuthorizationError):
            await publisher.queue.consume("q")


async def test_replay_puts_dead_letters_back_for_a_waiting_consumer(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("replayed")
    async with AsyncClient(api_url=server.url) as client:
        queue = (await client.auth.sign_in_with_token(admin_token)).queue
        await queue.configure(name, max_deliveries=1)
        for n in range(3):
            await queue.publish(name, {"n": n})
            taken = await queue.consume(name)
            assert taken is not None
            assert (await queue.nack(name, taken.message_id)).action == "dead_lettered"
        dead = await queue.dead_letters(name)
        assert [m.message for m in dead] == [{"n": 0}, {"n": 1}, {"n": 2}]
        async with AsyncBackground() as background:
            background.start(lambda: queue.consume(name, timeout=30))
            assert await queue.replay(name, [dead[1].message_id, "no-such-id"]) == 1
            (woken,) = await background.results()
        assert woken is not None
        assert (woken.message_id, woken.message, woken.retry_count) == (
            dead[1].message_id,
            {"n": 1},
            0,
        )
        await queue.ack(name, woken.message_id)
        assert await queue.replay(name, [dead[1].message_id]) == 0  # no longer dead
        assert await queue.replay(name, []) == 0
        assert await queue.delete_dead_letters(name, [dead[0].message_id]) == 1
        assert await queue.replay(name, limit=5) == 1  # every one left: the third
        stats = await queue.stats(name)
        assert (stats.ready, stats.in_flight, stats.dead) == (1, 0, 0)
        again = await queue.consume(name)
        assert again is not None
        await queue.nack(name, again.message_id)
        assert await queue.delete_dead_letters(name) == 1
        assert (await queue.stats(name)).dead == 0


async def test_replay_is_refused_to_other_tenants_and_without_queue_write(
    server: RunningServer, admin_token: str
) -> None:
    name, tenant = unique("guarded"), unique("r")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.queue.configure(name, max_deliveries=1)
        await admin.queue.publish(name, "mine")
        taken = await admin.queue.consume(name)
        assert taken is not None
        await admin.queue.nack(name, taken.message_id)
        for scopes in (["queue:read"], ["queue:read", "queue:consume"]):
            key = await admin.api_keys.create(unique("ro"), scopes)
            reader = await client.auth.sign_in_with_token(key["key"], "api_key")
            assert len(await reader.queue.dead_letters(name)) == 1
            refusals: list[Call] = [
                partial(reader.queue.replay, name),
                partial(reader.queue.replay, name, [taken.message_id]),
                partial(reader.queue.delete_dead_letters, name),
            ]
            for refused in refusals:
                with pytest.raises(AuthorizationError) as caught:
                    await refused()
                assert caught.value.details["scope"] == "queue:write"

        await admin.tenants.create(tenant, admin_username="boss", admin_password="boss-password-1")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            boss = await other.auth.sign_in_with_password("boss", "boss-password-1")
            assert await boss.queue.dead_letters(name) == []
            assert await boss.queue.replay(name) == 0  # a queue of the same name is its own
            assert await boss.queue.replay(name, [taken.message_id]) == 0
            assert await boss.queue.delete_dead_letters(name, [taken.message_id]) == 0
            assert await boss.queue.delete_dead_letters(name) == 0
        assert [m.message_id for m in await admin.queue.dead_letters(name)] == [taken.message_id]
        assert await admin.queue.replay(name, [taken.message_id]) == 1
        over_the_socket = await admin.rpc.call("queue.replay", {"queue": name})
        assert over_the_socket == {"replayed": 0}  # the WebSocket serves it too


async def test_replay_refusals_name_the_field(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        bad_calls: dict[str, list[Call]] = {
            "queue": [lambda: admin.queue.replay("a b"), lambda: admin.queue.replay("")],
            "limit": [
                lambda: admin.queue.replay("q", limit=0),
                lambda: admin.queue.replay("q", limit=-1),
                lambda: admin.queue.replay("q", limit=1001),
            ],
            "message_ids": [
                lambda: admin.queue.replay("q", ["x"] * 1001),
                lambda: admin.queue.delete_dead_letters("q", ["x"] * 1001),
            ],
            "message_ids[1]": [
                lambda: admin.queue.replay("q", ["ok", "nul\x00"]),
                lambda: admin.queue.replay("q", ["ok", "x" * 41]),
                lambda: admin.queue.replay("q", ["ok", ""]),
                lambda: admin.queue.delete_dead_letters("q", ["ok", "nul\x00"]),
            ],
        }
        for field, calls in bad_calls.items():
            for call in calls:
                with pytest.raises(ValidationError) as caught:
                    await call()
                assert caught.value.details["field"] == field, caught.value


async def test_tenants_have_their_own_queues(server: RunningServer, admin_token: str) -> None:
    tenant, name = unique("t"), unique("shared")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.tenants.create(tenant, "Queue tenant")
        await admin.queue.publish(name, "for the default tenant")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            await other.auth.register("worker", "worker-password")
            worker = await other.auth.sign_in_with_password("worker", "worker-password")
            with pytest.raises(AuthorizationError):
                await worker.queue.consume(name)  # a plain user has no queue scopes
        assert (await admin.queue.stats(name)).ready == 1
        await admin.queue.purge(name)


async def test_watch_pushes_the_depth_now_and_each_time_it_changes(
    server: RunningServer, admin_token: str
) -> None:
    name, tenant = unique("watched"), unique("w")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.queue.publish(name, 1)
        seen: list[tuple[int, int, int, int]] = []
        sub = await admin.queue.watch(
            name, lambda s: seen.append((s.ready, s.delayed, s.in_flight, s.dead))
        )
        await wait_until(lambda: seen == [(1, 0, 0, 0)])
        await admin.queue.publish(name, 2)
        await wait_until(lambda: seen[-1] == (2, 0, 0, 0))
        await admin.queue.publish(name, 3, delay=60)
        await wait_until(lambda: seen[-1] == (2, 1, 0, 0))
        taken = await admin.queue.consume(name)  # announces nothing: counted within a second
        assert taken is not None
        await wait_until(lambda: seen[-1] == (1, 1, 1, 0))
        await admin.queue.ack(name, taken.message_id)
        await wait_until(lambda: seen[-1] == (1, 1, 0, 0))
        assert all(one != next_ for one, next_ in pairwise(seen))  # changes

        # another tenant's queue of the same name is its own
        await admin.tenants.create(tenant, admin_username="boss", admin_password="boss-password-1")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            boss = await other.auth.sign_in_with_password("boss", "boss-password-1")
            theirs: list[int] = []
            watching = await boss.queue.watch(name, lambda s: theirs.append(s.ready))
            await wait_until(lambda: theirs == [0])
            await admin.queue.publish(name, 4)
            await wait_until(lambda: seen[-1] == (2, 1, 0, 0))  # announced by now
            await watching.unsubscribe()
            assert theirs == [0]
        await sub.unsubscribe()
        await admin.queue.purge(name)


async def test_watching_a_queue_needs_queue_read_and_a_valid_name(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        key = await admin.api_keys.create(unique("pub"), ["queue:write"])
        publisher = await client.auth.sign_in_with_token(key["key"], "api_key")
        with pytest.raises(AuthorizationError) as caught:
            await publisher.queue.watch("jobs", print)
        assert caught.value.details["scope"] == "queue:read"
        for bad in ("", "a b", "x" * 201, "nul\x00"):
            with pytest.raises(ValidationError) as refused:
                await admin.queue.watch(bad, print)
            assert refused.value.details["field"] == "queue"


async def test_unacked_messages_survive_a_restart(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    data = tmp_path / "kept"
    first = make_server(data_dir=data)
    async with AsyncClient(api_url=first.url) as client:
        queue = (await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)).queue
        for n in range(3):
            await queue.publish("work", n)
        taken = await queue.consume("work", ack_deadline=0.5)
        assert taken is not None
        await queue.ack("work", taken.message_id)
        assert await queue.consume("work", ack_deadline=0.5) is not None  # never acked
    first.stop()
    second = make_server(data_dir=data)
    async with AsyncClient(api_url=second.url) as client:
        queue = (await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)).queue
        seen = []
        while (msg := await queue.consume("work", timeout=2)) is not None:
            seen.append(msg.message)
            await queue.ack("work", msg.message_id)
        assert sorted(seen) == [1, 2]
