"""The bus between replicas: delivery, interest counts, and surviving a cut connection."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from roost.backends.bus import Bus, Wakeup
from roost.backends.bus.redis import RedisBus
from tests.conftest import REDIS_URL, require_redis
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


async def test_listeners_get_what_is_published_on_their_channel(bus: Bus) -> None:
    channel = f"test:{secrets.token_hex(4)}"
    got: list[bytes] = []
    stop = bus.listen(channel, got.append)
    bus.listen(channel + "-other", lambda _: got.append(b"wrong"))
    await bus.publish(channel, b"one")
    await wait_until(lambda: got == [b"one"])
    stop()
    with Wakeup(bus, channel) as wakeup:
        delivered = asyncio.create_task(wakeup.wait(5))
        await asyncio.sleep(0)
        await bus.publish(channel, b"two")
        assert await delivered is True  # "two" went out, and reached only the waiter
    assert got == [b"one"]


async def test_a_wakeup_counts_a_publish_made_before_its_wait(bus: Bus) -> None:
    channel = f"test:{secrets.token_hex(4)}"
    with Wakeup(bus, channel) as wakeup:
        got: list[bytes] = []
        stop = bus.listen(channel, got.append)
        await bus.publish(channel, b"early")  # while the caller is still looking for work
        await wait_until(lambda: got == [b"early"])
        stop()
        assert await wakeup.wait(5) is True
        assert await wakeup.wait(0.05) is False  # each publish wakes one wait, not every one


async def test_interest_is_counted_and_released(bus: Bus) -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    await bus.add_interest(prefix + "a")
    await bus.add_interest(prefix + "a")
    await bus.add_interest(prefix + "b")
    assert await bus.interest(prefix) == {prefix + "a": 2, prefix + "b": 1}
    await bus.drop_interest(prefix + "a")
    await bus.drop_interest(prefix + "b")
    assert await bus.interest(prefix) == {prefix + "a": 1}


async def test_the_redis_bus_resubscribes_after_its_connection_is_cut() -> None:
    require_redis()
    bus = RedisBus(REDIS_URL)
    await bus.start()
    channel = f"test:{secrets.token_hex(4)}"
    got: list[bytes] = []
    bus.listen(channel, got.append)
    admin = Redis.from_url(REDIS_URL, decode_responses=True)
    mine = [c for c in await admin.client_list(_type="pubsub") if c["name"] == bus.name]
    assert len(mine) == 1
    await admin.client_kill_filter(_id=mine[0]["id"])
    for _ in range(200):  # messages sent while it reconnects are lost: that is pub/sub
        await bus.publish(channel, b"again")
        if got:
            break
        await asyncio.sleep(0.05)
    assert got
    await admin.aclose()
    await bus.close()
