"""Every contract fixture is built from one table of backends, through the openers the server
uses (`open_kv_store`, `open_queue_store`, ...), so a contract suite runs each backend exactly
as a server would choose it by URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from roost.backends.bus import Bus, open_bus
from roost.backends.kv import KVStore, open_kv_store
from roost.backends.queue import QueueStore, open_queue_store
from roost.backends.ratelimit import RateLimiter, open_limiter
from roost.backends.sql import Database
from roost.backends.stream import StreamStore, open_stream_store
from tests.backends.databases import sql_database
from tests.clocks import ShiftedClock
from tests.conftest import REDIS_URL, require_redis

STORES = {
    "sqlite": ("sqlite", None),
    "postgresql": ("postgresql", None),
    "redis": ("sqlite", REDIS_URL),
}
"""Stores kept in SQL tables or in Redis: id -> (SQL database, `redis_url`)."""

IN_PROCESS = {"memory": None, "redis": REDIS_URL}
"""What lives in this process or in Redis (bus, rate limits): id -> `redis_url`."""


class _Closing(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closing)


@asynccontextmanager
async def opened_store(
    kind: str, tmp_path: Path, open_store: Callable[[str | None, Database], S]
) -> AsyncIterator[S]:
    """The store `open_store(redis_url, db)` makes for the backend `kind` of `STORES`."""
    database, url = STORES[kind]
    if url is not None:
        require_redis()
    async with sql_database(database, tmp_path, migrated=url is None) as db:
        store = open_store(url, db)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=list(STORES))
async def kv_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KVStore]:
    def near_cached(url: str | None, db: Database) -> KVStore:
        return open_kv_store(url, db, near_cache_bytes=1 << 20)  # as servers run it

    async with opened_store(request.param, tmp_path, near_cached) as store:
        yield store


@pytest.fixture(params=list(STORES))
async def queue_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueStore]:
    async with opened_store(request.param, tmp_path, open_queue_store) as store:
        yield store


@pytest.fixture(params=list(STORES))
async def stream_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StreamStore]:
    async with opened_store(request.param, tmp_path, open_stream_store) as store:
        yield store


def _in_process(request: pytest.FixtureRequest) -> str | None:
    url = IN_PROCESS[request.param]
    if url is not None:
        require_redis()
    return url


@pytest.fixture(params=list(IN_PROCESS))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    made = open_bus(_in_process(request))
    await made.start()
    yield made
    await made.close()


@pytest.fixture
def clock() -> ShiftedClock:
    """The clock of what a test times in this process (the `limiter`'s windows, the KV near
    cache): the test moves it forward instead of waiting."""
    return ShiftedClock()


@pytest.fixture(params=list(IN_PROCESS))
async def limiter(
    request: pytest.FixtureRequest, clock: ShiftedClock
) -> AsyncIterator[RateLimiter]:
    made = open_limiter(_in_process(request), clock=clock)
    yield made
    await made.close()
