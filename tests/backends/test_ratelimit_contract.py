"""One contract for the failure counters: in this process, and in Redis (shared)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from roost.backends.ratelimit import RateLimiter
from tests.clocks import ShiftedClock
from tests.waiting import wait_for


@pytest.fixture
def key() -> str:
    return f"test:{secrets.token_hex(4)}"


@pytest.mark.anyio
async def test_blocks_past_the_limit_and_resets(limiter: RateLimiter, key: str) -> None:
    for _ in range(3):
        await limiter.hit(key, window=60)
    assert await limiter.blocked_for(key, limit=4, window=60) is None
    await limiter.hit(key, window=60)
    wait = await limiter.blocked_for(key, limit=4, window=60)
    assert wait is not None
    assert 0 < wait <= 60
    await limiter.reset(key)
    assert await limiter.blocked_for(key, limit=4, window=60) is None


@pytest.mark.anyio
async def test_old_hits_stop_counting(limiter: RateLimiter, clock: ShiftedClock, key: str) -> None:
    await limiter.hit(key, window=60)
    clock.advance(30)
    await limiter.hit(key, window=60)
    assert await limiter.blocked_for(key, limit=2, window=60) is not None
    clock.advance(31)  # the first hit is 61 s old, the second 31 s
    assert await limiter.blocked_for(key, limit=2, window=60) is None
    assert await limiter.blocked_for(key, limit=1, window=60) is not None


@pytest.mark.anyio
async def test_take_counts_at_most_the_limit_of_concurrent_events(
    limiter: RateLimiter, key: str
) -> None:
    waits = await asyncio.gather(
        *(limiter.take(key, limit=5, window=60, event=f"e{i}") for i in range(20))
    )
    assert sum(wait is None for wait in waits) == 5
    assert all(0 < wait <= 60 for wait in waits if wait is not None)
    assert await limiter.blocked_for(key, limit=5, window=60) is not None


@pytest.mark.anyio
async def test_release_uncounts_one_taken_event(limiter: RateLimiter, key: str) -> None:
    assert await limiter.take(key, limit=2, window=60, event="first") is None
    assert await limiter.take(key, limit=2, window=60, event="second") is None
    assert await limiter.take(key, limit=2, window=60, event="third") is not None
    await limiter.release(key, "first")
    await limiter.release(key, "never-taken")
    await limiter.release(f"{key}:unknown", "first")
    assert await limiter.take(key, limit=2, window=60, event="third") is None
    assert await limiter.take(key, limit=2, window=60, event="fourth") is not None


@pytest.mark.anyio
async def test_counters_add_up_and_are_forgotten_after_their_ttl(
    limiter: RateLimiter, key: str
) -> None:
    other = key + ":other"
    assert await limiter.count({key: 3, other: 1}, ttl=60) == {key: 3, other: 1}
    assert await limiter.count({key: 2}, ttl=60) == {key: 5}
    brief = key + ":brief"
    assert await limiter.count({brief: 3}, ttl=0.05) == {brief: 3}

    async def started_anew() -> bool:
        return await limiter.count({brief: 0}, ttl=0.05) == {brief: 0}

    # Redis times the ttl itself, so it is waited for. The counts made meanwhile do not push
    # it back: it runs from the counter's start.
    await wait_for(started_anew, seconds=5)
    assert await limiter.count({brief: 1}, ttl=60) == {brief: 1}


@pytest.mark.anyio
async def test_a_burst_of_concurrent_hits_all_count(limiter: RateLimiter, key: str) -> None:
    # more at once than redis-py's default pool has connections (100): none refused
    await asyncio.gather(*(limiter.hit(key, window=60) for _ in range(300)))
    assert await limiter.blocked_for(key, limit=300, window=60) is not None
    assert await limiter.blocked_for(key, limit=301, window=60) is None
