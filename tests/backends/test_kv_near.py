"""The KV near cache in front of Redis, against the machine's Redis: what it keeps, and every
way a kept value is dropped. A second client (plain redis-py) plays another server replica."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio

from roost.backends.kv import NO_EXPIRY, Entry
from roost.backends.kv.near import NearCache
from roost.backends.kv.redis import RedisKVStore
from tests.clocks import ShiftedClock
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio

PREFIX = "roost:kv:"


@pytest.fixture
async def store(clock: ShiftedClock) -> AsyncIterator[RedisKVStore]:
    require_redis()
    kv = RedisKVStore(REDIS_URL, near_cache_bytes=1 << 20, clock=clock.monotonic)
    yield kv
    await kv.close()


@pytest.fixture
async def elsewhere() -> AsyncIterator[Any]:
    """Another Redis client, writing as another replica would."""
    client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def key() -> str:
    return f"near{secrets.token_hex(4)}:k"


async def cached(store: RedisKVStore, key: str) -> Entry | None:
    """Read `key` until the near cache holds it (tracking starts with the first read)."""
    assert store.near is not None
    for _ in range(200):
        entry = await store.get(key)
        if PREFIX + key in store.near:
            return entry
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} never reached the near cache")


async def kept(store: RedisKVStore, key: str, value: str) -> NearCache:
    """Set `key` and read it until the near cache holds it; returns the cache."""
    await store.set(key, value)
    await cached(store, key)
    assert store.near is not None
    return store.near


async def dropped(store: RedisKVStore, key: str) -> None:
    """Wait until Redis' invalidation of `key` has been read (it comes on its own connection)."""
    assert store.near is not None
    for _ in range(200):
        if PREFIX + key not in store.near:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{key} was never invalidated")


def commands_sent(store: RedisKVStore) -> list[int]:
    """A count, kept up to date, of the commands the store's own client sends from now on
    (every command of redis-py passes `execute_command`). Redis' own command statistics are
    the whole server's: other tests' work in parallel would show in them."""
    sent = [0]
    real = store._redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent[0] += 1
        return await real(*args, **options)

    store._redis.execute_command = counted
    return sent


async def test_a_value_read_once_is_answered_from_memory(store: RedisKVStore, key: str) -> None:
    await store.set(key, json.dumps({"n": 1}))
    assert await cached(store, key) == Entry('{"n": 1}', NO_EXPIRY)
    sent = commands_sent(store)
    for _ in range(50):
        assert await store.get(key) == Entry('{"n": 1}', NO_EXPIRY)
    assert sent == [0]  # not one read went to Redis
    assert await store.get_many([key, key]) == [Entry('{"n": 1}', NO_EXPIRY)] * 2
    assert sent == [0]


Change = Callable[[Any, str], Awaitable[object]]
CHANGES: dict[str, tuple[Change, Entry | None]] = {
    "set": (lambda r, k: r.set(k, '"new"'), Entry('"new"', NO_EXPIRY)),
    "delete": (lambda r, k: r.delete(k), None),
    "incr": (lambda r, k: r.incrby(k, 5), Entry("6", NO_EXPIRY)),
    "expire": (lambda r, k: r.expire(k, 100), Entry("1", 100)),
    "expire now": (lambda r, k: r.pexpire(k, 1), None),
    "copy over": (lambda r, k: r.copy(k + ":src", k, replace=True), Entry('"copied"', NO_EXPIRY)),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_made_elsewhere_drops_the_value(
    store: RedisKVStore, elsewhere: Any, key: str, change: str
) -> None:
    await store.set(key, "1")
    await elsewhere.set(PREFIX + key + ":src", '"copied"')
    await cached(store, key)
    make, expected = CHANGES[change]
    await make(elsewhere, PREFIX + key)
    await dropped(store, key)
    await asyncio.sleep(0.01)  # the 1 ms expiry has run out
    assert await store.get(key) == expected
    await elsewhere.delete(PREFIX + key, PREFIX + key + ":src")


async def test_a_replica_reads_its_own_writes_at_once(store: RedisKVStore, key: str) -> None:
    await store.set(key, "1")
    await cached(store, key)
    await store.set(key, "2")
    assert await store.get(key) == Entry("2", NO_EXPIRY)
    await cached(store, key)
    assert await store.incr(key, 1) == 3
    assert await store.get(key) == Entry("3", NO_EXPIRY)
    await cached(store, key)
    assert await store.expire(key, 50)
    assert await store.get(key) == Entry("3", 50)
    await cached(store, key)
    assert await store.delete([key]) == 1
    assert await store.get(key) is None


async def test_a_read_that_races_a_change_is_not_kept(
    store: RedisKVStore, elsewhere: Any, key: str
) -> None:
    near = await kept(store, key, '"older"')
    full = PREFIX + key
    tokens = near.reserve([full])
    await elsewhere.set(full, '"newer"')  # lands while "our" read of the old value travels
    await asyncio.sleep(0.05)  # its invalidation arrives
    near.settle([full], tokens, [('"older"', -1)], sent_at=near.clock())
    assert full not in near
    assert await store.get(key) == Entry('"newer"', NO_EXPIRY)
    await elsewhere.delete(full)


async def test_a_value_with_a_ttl_is_kept_no_longer_than_its_ttl(
    store: RedisKVStore, clock: ShiftedClock, key: str
) -> None:
    await store.set(key, "1", ttl=60)
    entry = await cached(store, key)
    assert entry is not None
    assert entry.ttl == 60
    assert store.near is not None
    clock.advance(55)
    [found] = store.near.lookup([PREFIX + key])
    assert found is not None
    assert found.value == "1"
    assert 0 < found.ttl <= 5
    clock.advance(5)
    # Redis has a minute yet to go: this is the cache's own count running out
    assert store.near.lookup([PREFIX + key]) == [None]
    await store.delete([key])


async def test_flushing_any_database_drops_everything(store: RedisKVStore, key: str) -> None:
    near = await kept(store, key, "1")
    other = redis.asyncio.Redis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/15")
    await other.flushdb()  # a database no test uses: Redis still says "flush everything"
    await other.aclose()
    await dropped(store, key)
    assert near.size == 0


async def test_a_lost_tracking_connection_empties_the_cache_until_it_is_back(
    store: RedisKVStore, elsewhere: Any, clock: ShiftedClock, key: str
) -> None:
    near = await kept(store, key, "1")
    killed = 0
    for client in await elsewhere.client_list():
        if client["name"] == "roost-kv-near-cache":
            killed += await elsewhere.execute_command("CLIENT", "KILL", "ID", client["id"])
    assert killed >= 1
    await elsewhere.set(PREFIX + key, "2")  # no one tells this cache any more
    assert await store.get(key) == Entry("2", NO_EXPIRY)  # the loss is seen, nothing is stale
    assert not near.tracking
    assert near.size == 0
    clock.advance(1)  # tracking is tried again after a second
    assert await cached(store, key) == Entry("2", NO_EXPIRY)
    assert near.tracking
    await store.delete([key])


async def test_memory_stays_within_its_room(elsewhere: Any) -> None:
    require_redis()
    store = RedisKVStore(REDIS_URL, near_cache_bytes=4000)
    near = store.near
    assert near is not None
    base = f"near{secrets.token_hex(4)}:"
    try:
        await store.set(base + "first", "1")
        await cached(store, base + "first")
        for n in range(20):
            await store.set(base + str(n), json.dumps("x" * 300))
            assert await store.get(base + str(n)) is not None
            assert near.size <= 4000
        assert PREFIX + base + "first" not in near  # the oldest went first
        assert PREFIX + base + "19" in near
        await store.set(base + "big", json.dumps("x" * 2000))
        assert await store.get(base + "big") is not None
        assert PREFIX + base + "big" not in near  # over a quarter of the room: never kept
    finally:
        keys = [base + "first", base + "big", *(base + str(n) for n in range(20))]
        await store.delete(keys)
        await store.close()


async def test_a_redis_that_refuses_tracking_leaves_reads_going_to_redis(
    elsewhere: Any, key: str
) -> None:
    user = f"near{secrets.token_hex(4)}"
    await elsewhere.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-client")
    host_and_db = REDIS_URL.split("://", 1)[1].rsplit("@", 1)[-1]
    store = RedisKVStore(f"redis://{user}:pw@{host_and_db}", near_cache_bytes=1 << 20)
    near = store.near
    assert near is not None
    try:
        await store.set(key, "1")
        for _ in range(20):
            assert await store.get(key) == Entry("1", NO_EXPIRY)
            await asyncio.sleep(0.01)
        assert not near.tracking  # refused for good: no retry each second
        assert near.size == 0
        await elsewhere.set(PREFIX + key, "2")
        assert await store.get(key) == Entry("2", NO_EXPIRY)
    finally:
        await store.delete([key])
        await store.close()
        await elsewhere.execute_command("ACL", "DELUSER", user)


async def test_a_tenants_policy_stamp_is_answered_from_memory_from_its_first_read(
    store: RedisKVStore,
) -> None:
    """A tenant whose policies never changed has no stamp; its first read sets one (the near
    cache keeps values, not their absence), so that the read each guarded call makes is
    not a round trip to Redis every time. A change still moves it."""
    from roost.services import policystore

    tenant = f"near{secrets.token_hex(4)}"
    platform: Any = SimpleNamespace(kv=store)
    key = policystore.stamp_key(tenant)
    try:
        first = await policystore._stamp(platform, tenant)
        assert first is not None
        assert await cached(store, key) == Entry(first, NO_EXPIRY)
        assert await policystore._stamp(platform, tenant) == first
        await policystore._new_stamp(platform, tenant)
        moved = await policystore._stamp(platform, tenant)
        assert moved not in (None, first)
    finally:
        await store.delete([key])
