"""Queue behaviour that needs concurrency (so it is written for the async client only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roost import AsyncClient
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    require_redis,
    unique,
)

pytestmark = pytest.mark.anyio


async def _admin(client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def test_consume_waits_for_a_publish(server: RunningServer) -> None:
    name = unique("wait")
    async with AsyncClient(api_url=server.url) as client:
        queue = (await _admin(client)).queue
        waiting = asyncio.create_task(queue.consume(name, timeout=20))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await queue.publish(name, "wake up")
        msg = await waiting
        assert msg is not None
        assert msg.message == "wake up"
        await queue.extend(name, msg.message_id, 60)
        await queue.ack(name, msg.message_id)


async def test_consumers_on_two_replicas_share_a_queue_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    first, second = make_server(redis_url=REDIS_URL), make_server(redis_url=REDIS_URL)
    name = unique("shared")
    async with AsyncClient(api_url=first.url) as one, AsyncClient(api_url=second.url) as two:
        a, b = (await _admin(one)).queue, (await _admin(two)).queue
        sent = [n for n in range(60)]
        for n in sent:
            await a.publish(name, n)
        taken: list[int] = []

        async def work(queue: object) -> None:
            assert isinstance(queue, type(a))
            while (msg := await queue.consume(name, ack_deadline=30)) is not None:
                taken.append(msg.message)
                await queue.ack(name, msg.message_id)

        await asyncio.gather(work(a), work(b), work(a), work(b))
        assert sorted(taken) == sent  # each once: none lost, none delivered twice
        # a message held on a replica that dies comes back on the other after its deadline
        await a.publish(name, "orphan")
        held = await a.consume(name, ack_deadline=1)
        assert held is not None
        first.stop()
        rescued = await b.consume(name, timeout=10)
        assert rescued is not None
        assert (rescued.message_id, rescued.retry_count) == (held.message_id, 1)
        await b.ack(name, rescued.message_id)
