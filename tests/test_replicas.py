"""Two server processes sharing PostgreSQL and Redis behave as one platform."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import httpx
import pytest

from roost import AsyncClient, AuthenticationError, ConflictError, StreamEvent
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    drop_pg_schemas,
    require_postgres,
    require_redis,
    unique,
)
from tests.replicas import Cluster, Replica
from tests.waiting import wait_for, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_postgres()
    require_redis()
    cluster = Cluster(tmp_path_factory.mktemp("replicas"))
    cluster.start()
    cluster.start()
    yield cluster
    cluster.stop()
    drop_pg_schemas(cluster.prefix)


@pytest.fixture
async def clients(cluster: Cluster) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    first, second = cluster.replicas[:2]
    async with AsyncClient(api_url=first.url) as one, AsyncClient(api_url=second.url) as two:
        yield (
            await one.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD),
            await two.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD),
        )


async def test_pubsub_crosses_replicas(clients: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = clients
    topic, got = unique("news"), []
    await b.pubsub.subscribe([f"{topic}.#"], lambda t, m: got.append((t, m)))
    result = await a.pubsub.publish(f"{topic}.eu", {"n": 1})
    assert result.subscribers_matched == 1  # counted across replicas
    await wait_until(lambda: got == [(f"{topic}.eu", {"n": 1})])


async def test_stream_subscribers_see_every_replicas_events_in_order(
    clients: tuple[AsyncClient, AsyncClient],
) -> None:
    a, b = clients
    room, events = unique("room"), []
    seen: list[StreamEvent] = []
    await b.stream.subscribe(room, seen.append, replay=True)

    async def publish(client: AsyncClient, name: str) -> None:
        for n in range(40):
            await client.stream.publish(room, name, n)

    await asyncio.gather(publish(a, "from-a"), publish(b, "from-b"), publish(a, "from-a2"))
    await wait_until(lambda: len(seen) >= 120)
    await asyncio.sleep(0.2)
    events = [e.offset for e in seen]
    assert events == list(range(120))  # dense, in order, no repeats
    assert {e.event_type for e in seen} == {"from-a", "from-b", "from-a2"}


async def test_queue_consumers_on_both_replicas_never_share_a_message(
    clients: tuple[AsyncClient, AsyncClient],
) -> None:
    a, b = clients
    name = unique("jobs")
    for n in range(80):
        await (a if n % 2 else b).queue.publish(name, n)
    taken: list[int] = []

    async def consume(client: AsyncClient) -> None:
        while (msg := await client.queue.consume(name, ack_deadline=60)) is not None:
            taken.append(msg.message)
            await client.queue.ack(name, msg.message_id)

    await asyncio.gather(consume(a), consume(b), consume(a), consume(b))
    assert sorted(taken) == list(range(80))  # each once: none lost, none held twice


async def test_a_message_held_by_a_killed_replica_is_delivered_again(cluster: Cluster) -> None:
    doomed: Replica = cluster.start()
    survivor = cluster.replicas[0]
    name = unique("orphans")
    async with AsyncClient(api_url=doomed.url) as c1, AsyncClient(api_url=survivor.url) as c2:
        dying = await c1.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        living = await c2.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await living.queue.publish(name, "work")
        held = await dying.queue.consume(name, ack_deadline=1)
        assert held is not None
        doomed.kill()
        rescued = await living.queue.consume(name, timeout=10)
        assert rescued is not None
        assert (rescued.message_id, rescued.retry_count) == (held.message_id, 1)
        await living.queue.ack(name, rescued.message_id)


async def test_kv_lock_taken_on_one_replica_is_refused_on_the_other(
    clients: tuple[AsyncClient, AsyncClient],
) -> None:
    a, b = clients
    name = unique("lock")
    async with a.kv.lock(name, ttl=30):
        with pytest.raises(ConflictError):
            async with b.kv.lock(name, wait=0.2):
                pass
    async with b.kv.lock(name, wait=1):
        pass


async def test_a_kv_value_changed_on_one_replica_is_read_new_on_the_other(
    clients: tuple[AsyncClient, AsyncClient],
) -> None:
    a, b = clients
    key = unique("near")
    await a.kv.set(key, 1)
    for _ in range(20):  # b keeps the value in memory once its tracking of Redis is on
        assert (await b.kv.get(key)).value == 1
    await a.kv.set(key, 2)
    assert (await b.kv.get(key)).value == 2
    await a.kv.incr(key, 3)
    assert (await b.kv.get(key)).value == 5
    await a.kv.delete(key)
    assert not (await b.kv.get(key)).found


async def test_a_revoked_key_stops_working_on_every_replica_at_once(
    cluster: Cluster, clients: tuple[AsyncClient, AsyncClient], tmp_path: Path
) -> None:
    a, _ = clients
    created = await a.api_keys.create(unique("k"), ["kv:read"])
    async with AsyncClient(api_url=cluster.replicas[1].url) as anonymous:
        on_b = await anonymous.auth.sign_in_with_token(created["key"], "api_key")
        assert not (await on_b.kv.get("anything")).found  # now cached on replica b for 30 s
        await a.api_keys.revoke(created["id"])

        async def refused() -> bool:
            try:
                await on_b.kv.get("anything")
            except AuthenticationError:
                return True
            return False

        for _ in range(100):  # the bus carries it in milliseconds; the cache would take 30 s
            if await refused():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("replica b still accepts the revoked key")


HANDS_OUT_ITS_TOKEN = """
import os, time

def main(params, user_data):
    yield os.environ["ROOST_TOKEN"]
    for _ in range(600):
        time.sleep(0.1)
        yield "running"
"""


async def test_a_runtime_token_dies_on_every_replica_when_its_run_ends(cluster: Cluster) -> None:
    runs_functions = {"ROOST_FUNCTIONS_ENABLED": "true", "ROOST_FUNCTIONS_POOL_SIZE": "1"}
    first, second = cluster.start(**runs_functions), cluster.start(**runs_functions)
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60) as one,
        httpx.AsyncClient(base_url=second.url, timeout=60) as two,
    ):
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        access = (await one.post("/api/v1/auth/login", json=login)).json()["access"]
        admin = {"authorization": f"Bearer {access}"}
        name = unique("fn")
        body = {"name": name, "code": HANDS_OUT_ITS_TOKEN}
        deployed = await one.post("/api/v1/functions/deploy", json=body, headers=admin)
        assert deployed.status_code == 200, deployed.text

        async def acts_on_the_second() -> bool:
            headers = {"authorization": f"Bearer {token}"}
            return (await two.post("/api/v1/auth/whoami", headers=headers)).status_code == 200

        async with one.stream("POST", f"/api/v1/fn/{name}", headers=admin) as run:
            assert run.status_code == 200
            lines = run.aiter_lines()
            token = json.loads(await anext(lines))["chunk"]
            assert await acts_on_the_second()  # now in its principal cache, for 30 s
        # the stream closed: the run ends on the first replica, and the bus tells the second
        await wait_for(lambda: _not(acts_on_the_second()))


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
