"""One contract for every stream store: SQL (SQLite and PostgreSQL) and Redis."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from roost.backends.stream import NewEvent, Retention, StoredEvent, StreamStore
from tests.waiting import wait_for

pytestmark = pytest.mark.anyio

KEEP = Retention(max_events=1000, max_age=None)


@pytest.fixture
def store(stream_store: StreamStore) -> StreamStore:
    """The store under contract: one per backend of `tests/backends/conftest.py`."""
    return stream_store


async def append(
    store: StreamStore,
    room: str,
    event_type: str,
    data: str,
    metadata: dict[str, str],
    retention: Retention,
) -> StoredEvent:
    return (await store.append(room, [NewEvent(event_type, data, metadata)], retention))[0]


@pytest.fixture
def room() -> str:
    return f"t{secrets.token_hex(4)}:chat"


async def test_offsets_are_dense_from_zero(store: StreamStore, room: str) -> None:
    empty = await store.read(room, 0, None, 10)
    assert (empty.events, empty.oldest, empty.newest) == ([], 0, -1)
    before = time.time()
    for n in range(5):
        event = await append(store, room, "message", f'{{"n": {n}}}', {"by": "ann"}, KEEP)
        assert event.offset == n
    page = await store.read(room, 0, None, 10)
    assert [e.offset for e in page.events] == [0, 1, 2, 3, 4]
    assert (page.oldest, page.newest) == (0, 4)
    first = page.events[0]
    assert (first.event_type, first.data, first.metadata) == ("message", '{"n": 0}', {"by": "ann"})
    assert first.timestamp >= before - 1
    assert len({e.id for e in page.events}) == 5


async def test_ranges_limits_and_the_last_n(store: StreamStore, room: str) -> None:
    for n in range(10):
        await append(store, room, "tick", str(n), {}, KEEP)
    assert [e.data for e in (await store.read(room, 3, 5, 10)).events] == ["3", "4", "5"]
    assert [e.offset for e in (await store.read(room, 2, None, 3)).events] == [2, 3, 4]
    assert [e.offset for e in (await store.read(room, -3, None, 10)).events] == [7, 8, 9]
    assert [e.offset for e in (await store.read(room, -50, None, 100)).events] == list(range(10))


async def test_retention_by_count_and_by_age(store: StreamStore, room: str) -> None:
    for n in range(6):
        await append(store, room, "tick", str(n), {}, Retention(max_events=4, max_age=None))
    page = await store.read(room, 0, None, 10)
    assert [e.offset for e in page.events] == [2, 3, 4, 5]
    assert (page.oldest, page.newest) == (2, 5)
    brief = Retention(max_events=100, max_age=0.05)
    aged, kept = room + "-aged", room + "-kept"
    await store.configure(kept, Retention(max_events=100, max_age=3600))  # beats the default
    await append(store, kept, "old", "1", {}, brief)
    old = await append(store, aged, "old", "1", {}, brief)
    newest: list[StoredEvent] = []

    async def old_one_dropped() -> bool:
        newest.append(await append(store, aged, "new", "2", {}, brief))
        return (await store.read(aged, 0, None, 1)).oldest > old.offset

    # Redis times events itself, so the age is waited for; each append applies retention
    await wait_for(old_one_dropped, seconds=5)
    page = await store.read(aged, 0, None, 1000)
    assert page.events[-1].id == newest[-1].id  # what is younger than max_age stays
    assert {e.event_type for e in page.events} == {"new"}
    assert (page.oldest, page.newest) == (page.events[0].offset, newest[-1].offset)
    await append(store, kept, "new", "2", {}, brief)
    assert [e.event_type for e in (await store.read(kept, 0, None, 10)).events] == ["old", "new"]


async def test_concurrent_appends_get_distinct_dense_offsets(store: StreamStore, room: str) -> None:
    events = await asyncio.gather(*(append(store, room, "x", str(n), {}, KEEP) for n in range(40)))
    assert sorted(e.offset for e in events) == list(range(40))


async def test_a_batch_takes_consecutive_offsets_at_once(store: StreamStore, room: str) -> None:
    await append(store, room, "first", "0", {}, KEEP)
    batch = [NewEvent("change", str(n), {"n": str(n)}) for n in range(1, 4)]
    stored = await store.append(room, batch, KEEP)
    assert [(e.offset, e.data, e.metadata) for e in stored] == [
        (1, "1", {"n": "1"}),
        (2, "2", {"n": "2"}),
        (3, "3", {"n": "3"}),
    ]
    assert (await store.read(room, 0, None, 10)).newest == 3


async def test_delete_prefix_removes_rooms_events_offsets_and_retention(
    store: StreamStore, room: str
) -> None:
    tenant = room.split(":")[0] + ":"
    other = room.split(":")[0] + "x:chat"  # starts like the prefix, yet is another name
    await store.configure(room, Retention(max_events=2, max_age=None))
    for n in range(3):
        await append(store, room, "old", str(n), {}, KEEP)
    await append(store, other, "kept", "0", {}, KEEP)
    await store.delete_prefix(tenant)
    page = await store.read(room, 0, None, 10)
    assert (page.events, page.oldest, page.newest) == ([], 0, -1)
    for n in range(3):  # offsets start again at 0, and the retention of 2 is gone
        await append(store, room, "new", str(n), {}, KEEP)
    page = await store.read(room, 0, None, 10)
    assert [(e.offset, e.event_type) for e in page.events] == [(0, "new"), (1, "new"), (2, "new")]
    assert [e.event_type for e in (await store.read(other, 0, None, 10)).events] == ["kept"]
    await store.delete_prefix(tenant + "nothing-here:")


async def test_a_burst_of_concurrent_appends_all_land(store: StreamStore, room: str) -> None:
    # more at once than redis-py's default pool has connections (100): none refused, and
    # the offsets stay dense
    stored = await asyncio.gather(*(append(store, room, "e", str(n), {}, KEEP) for n in range(300)))
    assert sorted(event.offset for event in stored) == list(range(300))
