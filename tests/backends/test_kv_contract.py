"""One contract for every KV store: SQL (SQLite and PostgreSQL) and Redis."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from roost.backends.kv import NO_EXPIRY, Entry, KVStore
from tests.waiting import wait_for

BRIEF = 0.05
"""A ttl that runs out while a test waits: Redis times it itself, so tests wait for it."""


@pytest.fixture
def store(kv_store: KVStore) -> KVStore:
    """The store under contract: one per backend of `tests/backends/conftest.py`."""
    return kv_store


@pytest.fixture
def ns() -> str:
    """A key prefix no other test run uses (Redis is shared)."""
    return f"t{secrets.token_hex(4)}:"


@pytest.mark.anyio
async def test_set_get_and_ttl(store: KVStore, ns: str) -> None:
    assert await store.set(ns + "a", json.dumps({"x": 1}))
    entry = await store.get(ns + "a")
    assert entry is not None
    assert (json.loads(entry.value), entry.ttl) == ({"x": 1}, NO_EXPIRY)
    await store.set(ns + "b", "1", ttl=100)
    timed = await store.get(ns + "b")
    assert timed is not None
    assert 0 < timed.ttl <= 100
    assert await store.get(ns + "missing") is None


@pytest.mark.anyio
async def test_get_many_answers_each_key_in_its_place(store: KVStore, ns: str) -> None:
    await store.set(ns + "a", '"A"')
    await store.set(ns + "b", '"B"', ttl=100)
    await store.set(ns + "gone", '"G"', ttl=BRIEF)
    await store.hset(ns + "h", {"f": "1"})

    async def expired() -> bool:
        return await store.get_many([ns + "gone"]) == [None]

    await wait_for(expired, seconds=5)
    keys = ["b", "missing", "h", "a", "gone", "a"]
    found = await store.get_many([ns + key for key in keys])
    b, missing, wrong, a, gone, a_again = found
    assert isinstance(b, Entry)
    assert b.value == '"B"'
    assert 0 < b.ttl <= 100
    assert missing is None
    assert gone is None  # expired keys are never returned
    assert isinstance(wrong, ValueError)
    assert a == a_again == Entry('"A"', NO_EXPIRY)
    assert await store.get_many([]) == []


@pytest.mark.anyio
async def test_nx_and_xx(store: KVStore, ns: str) -> None:
    assert not await store.set(ns + "k", "1", xx=True)
    assert await store.set(ns + "k", "1", nx=True)
    assert not await store.set(ns + "k", "2", nx=True)
    assert await store.set(ns + "k", "3", xx=True)
    entry = await store.get(ns + "k")
    assert entry is not None
    assert entry.value == "3"


@pytest.mark.anyio
async def test_expired_keys_are_never_returned(store: KVStore, ns: str) -> None:
    await store.set(ns + "short", "1", ttl=BRIEF)
    await store.hset(ns + "h", {"f": "1"}, ttl=BRIEF)
    assert await store.acquire(ns + "lock", "me", ttl=BRIEF)

    async def lock_taken_over() -> bool:  # the lock expires last: it was taken last
        return await store.acquire(ns + "lock", "you", ttl=5)

    await wait_for(lock_taken_over, seconds=5)
    assert await store.get(ns + "short") is None
    assert await store.hgetall(ns + "h") == {}
    assert not await store.set(ns + "short", "x", xx=True)  # absent: not overwritten
    assert await store.set(ns + "short", "2", nx=True)  # absent again
    assert not await store.acquire(ns + "lock", "me", ttl=5)  # "you" holds it now
    keys, _ = await store.scan(ns + "h", None, 100)
    assert keys == []


@pytest.mark.anyio
async def test_delete_counts_keys_that_existed(store: KVStore, ns: str) -> None:
    await store.set(ns + "1", "1")
    await store.set(ns + "2", "2")
    assert await store.delete([ns + "1", ns + "2", ns + "3"]) == 2
    assert await store.delete([]) == 0


@pytest.mark.anyio
async def test_incr_is_atomic_and_refuses_non_integers(store: KVStore, ns: str) -> None:
    assert await store.incr(ns + "n", 5) == 5
    await asyncio.gather(*(store.incr(ns + "n", 1) for _ in range(40)))
    assert await store.incr(ns + "n", -45) == 0
    await store.set(ns + "s", json.dumps("text"))
    with pytest.raises(ValueError):  # noqa: PT011 - the stores raise plain ValueError
        await store.incr(ns + "s", 1)
    await store.hset(ns + "hash", {"a": "1"})
    with pytest.raises(ValueError):  # noqa: PT011
        await store.get(ns + "hash")


@pytest.mark.anyio
async def test_a_full_scan_returns_every_key(store: KVStore, ns: str) -> None:
    wanted = {f"{ns}scan:{i:02d}" for i in range(25)}
    for key in wanted:
        await store.set(key, "1")
    await store.set(ns + "other", "1")
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(100_000):  # Redis may hold many other keys: pages can come back short
        keys, cursor = await store.scan(ns + "scan:", cursor, 10)
        seen.update(keys)
        if cursor is None:
            break
    assert seen == wanted


@pytest.mark.anyio
async def test_expire(store: KVStore, ns: str) -> None:
    assert not await store.expire(ns + "nope", 10)
    await store.set(ns + "e", "1")
    assert await store.expire(ns + "e", 50)
    entry = await store.get(ns + "e")
    assert entry is not None
    assert 0 < entry.ttl <= 50


@pytest.mark.anyio
async def test_hashes(store: KVStore, ns: str) -> None:
    assert await store.hset(ns + "user", {"name": '"ann"', "age": "31"}) == 2
    assert await store.hset(ns + "user", {"age": "32", "city": '"Oslo"'}) == 1
    assert await store.hget(ns + "user", "age") == "32"
    assert await store.hget(ns + "user", "nope") is None
    assert await store.hgetall(ns + "user") == {"name": '"ann"', "age": "32", "city": '"Oslo"'}
    assert await store.hdel(ns + "user", ["age", "nope"]) == 1
    assert await store.hdel(ns + "user", ["name", "city"]) == 2
    assert await store.hgetall(ns + "user") == {}
    await store.set(ns + "plain", "1")
    with pytest.raises(ValueError):  # noqa: PT011
        await store.hset(ns + "plain", {"a": "1"})


@pytest.mark.anyio
async def test_only_the_owner_releases_a_lock(store: KVStore, ns: str) -> None:
    assert await store.acquire(ns + "job", "owner", ttl=30)
    assert not await store.acquire(ns + "job", "thief", ttl=30)
    assert not await store.release(ns + "job", "thief")
    assert await store.release(ns + "job", "owner")
    assert not await store.release(ns + "job", "owner")
    assert await store.acquire(ns + "job", "next", ttl=30)


@pytest.mark.anyio
async def test_delete_prefix_removes_keys_hashes_and_locks_under_it_only(
    store: KVStore, ns: str
) -> None:
    longer = ns[:-1] + "x:"  # starts like ns, yet is another name
    await store.set(ns + "a", '"A"')
    await store.set(ns + "b", "2", ttl=100)
    await store.hset(ns + "h", {"f": "1"})
    assert await store.acquire(ns + "lock", "old-owner", 100)
    await store.set(longer + "a", '"kept"')
    assert await store.get(ns + "a") == Entry('"A"', NO_EXPIRY)  # now in any near cache
    assert await store.delete_prefix(ns + "*") == 0  # wildcards are plain characters
    assert await store.delete_prefix(ns + "%") == 0
    assert await store.delete_prefix(ns) == 4
    assert await store.get(ns + "a") is None
    assert await store.get_many([ns + "a", ns + "b"]) == [None, None]
    assert await store.hgetall(ns + "h") == {}
    assert await _every_key(store, ns) == []
    assert await store.acquire(ns + "lock", "new-owner", 100)  # the old lock went too
    assert await store.get(longer + "a") == Entry('"kept"', NO_EXPIRY)
    assert await store.delete_prefix(ns + "nothing-here:") == 0


async def _every_key(store: KVStore, prefix: str) -> list[str]:
    """Every key under `prefix`, page after page: a page may be empty before the end (Redis'
    SCAN walks the whole keyspace, which other tests fill)."""
    keys, cursor = await store.scan(prefix, None, 100)
    while cursor is not None:
        more, cursor = await store.scan(prefix, cursor, 100)
        keys += more
    return keys


@pytest.mark.anyio
async def test_a_burst_of_concurrent_increments_all_count(store: KVStore, ns: str) -> None:
    # more at once than redis-py's default pool has connections (100): none refused
    await asyncio.gather(*(store.incr(ns + "n", 1) for _ in range(300)))
    assert await store.incr(ns + "n", 0) == 300
