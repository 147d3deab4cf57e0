"""The services' TTL cache, on an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from roost.services.caching import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_its_ttl_then_is_gone() -> None:
    clock = Clock()
    cache = TTLCache[str](2.0, clock=clock)
    cache.put("acme", "schema")
    clock.now += 1.9
    assert cache.get("acme") == "schema"
    clock.now += 0.2
    assert cache.get("acme") is None
    cache.put("acme", "swept", ttl=10)
    clock.now += 9
    assert cache.get("acme") == "swept"


def test_the_oldest_entry_goes_first_when_full() -> None:
    cache = TTLCache[int](60, clock=Clock(), max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)


def test_a_full_cache_makes_room_in_one_go() -> None:
    # entries go only when read: a cache of many credentials fills with expired ones, and
    # dropping one per put made each put at capacity walk the dict (~33 µs at 50,000)
    clock = Clock()
    cache = TTLCache[int](60, clock=clock, max_entries=8)
    for n in range(8):
        cache.put(f"old{n}", n)
    clock.now += 61
    cache.put("new", 1)
    assert len(cache._entries) == 1  # every expired entry at once
    for n in range(7):
        cache.put(f"live{n}", n)
    cache.put("one more", 8)  # all alive: the oldest quarter goes
    assert len(cache._entries) == 7
    assert cache.get("new") is None
    assert cache.get("live0") is None
    assert cache.get("live1") == 1
    assert cache.get("one more") == 8


@pytest.mark.anyio
async def test_concurrent_misses_load_once() -> None:
    cache = TTLCache[int](60, clock=Clock())
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 7

    waiting = [asyncio.create_task(cache.get_or_load("acme", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [7] * 20
    assert loads == 1
    assert cache.get("acme") == 7


@pytest.mark.anyio
async def test_a_load_overtaken_by_a_pop_is_answered_but_not_kept() -> None:
    cache = TTLCache[str](60, clock=Clock())
    started, release = asyncio.Event(), asyncio.Event()

    async def load() -> str:
        started.set()
        await release.wait()
        return "before the change"

    loading = asyncio.create_task(cache.get_or_load("acme", load))
    await started.wait()
    cache.pop("acme")  # the table changed while the old schema was being read
    release.set()
    assert await loading == "before the change"
    assert cache.get("acme") is None


@pytest.mark.anyio
async def test_a_read_after_a_pop_does_not_join_a_load_that_began_before_it() -> None:
    # a trigger paused while its tenant's triggers were being read: a write that comes after
    # the pause must see it, not wait for the read begun before and take its answer
    cache = TTLCache[str](60, clock=Clock())
    started, release = asyncio.Event(), asyncio.Event()
    stored = "enabled"

    async def load() -> str:
        value = stored
        started.set()
        await release.wait()
        return value

    before = asyncio.create_task(cache.get_or_load("acme", load))
    await started.wait()
    stored = "paused"
    cache.pop("acme")
    started.clear()
    after = asyncio.create_task(cache.get_or_load("acme", load))
    await started.wait()
    release.set()
    assert (await before, await after) == ("enabled", "paused")
    assert cache.get("acme") == "paused"


@pytest.mark.anyio
async def test_a_failed_load_raises_to_every_waiter_and_keeps_nothing() -> None:
    cache = TTLCache[int](60, clock=Clock())

    async def load() -> int:
        await asyncio.sleep(0)
        raise LookupError("gone")

    results = await asyncio.gather(
        *(cache.get_or_load("acme", load) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, LookupError) for result in results)
    assert cache.get("acme") is None


@pytest.mark.anyio
async def test_when_the_loader_is_cancelled_its_waiters_load_again_instead_of_failing() -> None:
    # one caller's cancelled call (a WebSocket cancel frame) began the load: another's call
    # waiting on it got the cancellation, and answered 500
    cache = TTLCache[str](2.0, clock=Clock())
    started, gate = asyncio.Event(), asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        started.set()
        await gate.wait()
        return "spec"

    loader = asyncio.create_task(cache.get_or_load("k", load))
    await started.wait()
    waiter = asyncio.create_task(cache.get_or_load("k", load))
    await asyncio.sleep(0)
    loader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loader
    gate.set()
    assert await waiter == "spec"
    assert loads == 2
    assert cache.get("k") == "spec"


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_cancel_the_shared_load() -> None:
    cache = TTLCache[str](60, clock=Clock())
    gate = asyncio.Event()

    async def load() -> str:
        await gate.wait()
        return "schema"

    loader = asyncio.create_task(cache.get_or_load("acme", load))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(cache.get_or_load("acme", load))
    patient = asyncio.create_task(cache.get_or_load("acme", load))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await loader == "schema"
    assert await patient == "schema"
    assert cache.get("acme") == "schema"


@pytest.mark.anyio
async def test_a_pop_of_another_key_does_not_stop_a_load_from_being_kept() -> None:
    # a run's end forgets its token: the loads of other credentials under way stay cacheable
    cache = TTLCache[str](60, clock=Clock())
    started, gate = asyncio.Event(), asyncio.Event()

    async def load() -> str:
        started.set()
        await gate.wait()
        return "schema"

    loading = asyncio.create_task(cache.get_or_load("acme", load))
    await started.wait()
    cache.pop("globex")
    gate.set()
    assert await loading == "schema"
    assert cache.get("acme") == "schema"
