"""One contract for every queue store: SQL (SQLite and PostgreSQL) and Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from roost.backends.queue import Delivery, QueueStore
from tests.waiting import wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(queue_store: QueueStore) -> QueueStore:
    """The store under contract: one per backend of `tests/backends/conftest.py`."""
    return queue_store


@pytest.fixture
def q() -> str:
    """A queue name no other test run uses (Redis is shared)."""
    return f"t{secrets.token_hex(4)}:jobs"


async def publish(store: QueueStore, q: str, body: str, priority: int = 5, delay: float = 0) -> str:
    message_id, _ = await store.publish(q, body, priority=priority, headers={}, delay=delay)
    return message_id


async def test_highest_priority_then_oldest_first(store: QueueStore, q: str) -> None:
    first = await store.publish(q, '"low"', priority=1, headers={"from": "test"}, delay=0)
    second = await store.publish(q, '"high-1"', priority=9, headers={}, delay=0)
    third = await store.publish(q, '"high-2"', priority=9, headers={}, delay=0)
    assert [first[1], second[1], third[1]] == [0, 0, 1]  # ready messages ahead of each
    bodies = []
    for _ in range(3):
        delivery = await store.claim(q, 30)
        assert delivery is not None
        bodies.append(delivery.body)
        if delivery.id == first[0]:
            assert delivery.headers == {"from": "test"}
            assert delivery.priority == 1
            assert delivery.retry_count == 0
    assert bodies == ['"high-1"', '"high-2"', '"low"']
    assert await store.claim(q, 30) is None


async def test_ack_removes_for_good_and_only_once(store: QueueStore, q: str) -> None:
    await publish(store, q, "1")
    delivery = await store.claim(q, 30)
    assert delivery is not None
    assert await store.ack(q, delivery.id) is True
    assert await store.ack(q, delivery.id) is False
    assert await store.ack(q, "no-such-message") is False
    counts = await store.counts(q)
    assert (counts.ready, counts.in_flight, counts.dead) == (0, 0, 0)


async def test_nack_requeues_then_dead_letters(store: QueueStore, q: str) -> None:
    await store.configure(q, 2)
    message_id = await publish(store, q, '{"n": 1}')
    first = await store.claim(q, 30)
    assert first is not None
    assert first.retry_count == 0
    assert await store.nack(q, message_id, requeue=True) == "requeued"
    second = await store.claim(q, 30)
    assert second is not None
    assert second.id == message_id
    assert second.retry_count == 1
    assert await store.nack(q, message_id, requeue=True) == "dead_lettered"  # out of deliveries
    assert await store.nack(q, message_id, requeue=True) is None  # no longer in flight
    assert await store.claim(q, 30) is None
    dead = await store.dead_letters(q, 10)
    assert [d.id for d in dead] == [message_id]
    assert dead[0].body == '{"n": 1}'
    other = await publish(store, q, "2")
    await store.claim(q, 30)
    assert await store.nack(q, other, requeue=False) == "dead_lettered"
    assert (await store.counts(q)).dead == 2


async def claimed(store: QueueStore, q: str, ack_deadline: float) -> Delivery:
    """The next delivery, once there is one: deadlines and delays are timed by the store (on
    Redis by its own clock), so a test waits for them."""
    found: list[Delivery] = []

    async def claim() -> bool:
        delivery = await store.claim(q, ack_deadline)
        found.extend([delivery] if delivery else [])
        return bool(found)

    await wait_for(claim, seconds=5)
    return found[0]


async def test_missed_deadline_redelivers_then_dead_letters(store: QueueStore, q: str) -> None:
    await store.configure(q, 2)
    message_id = await publish(store, q, "1")
    assert (await store.claim(q, 0.2)) is not None
    assert await store.claim(q, 0.2) is None  # held until its deadline
    again = await claimed(store, q, 0.05)
    assert again.id == message_id
    assert again.retry_count == 1

    async def dead() -> bool:
        assert await store.claim(q, 30) is None  # two deliveries missed: never delivered again
        return [d.id for d in await store.dead_letters(q, 10)] == [message_id]

    await wait_for(dead, seconds=5)


async def test_late_ack_still_counts_until_someone_else_claims(store: QueueStore, q: str) -> None:
    await publish(store, q, "1")
    delivery = await store.claim(q, 0.01)
    assert delivery is not None
    await asyncio.sleep(0.05)  # past the deadline, which nothing shows but a claim
    assert await store.ack(q, delivery.id) is True
    assert await store.claim(q, 30) is None


async def test_delay_and_extend(store: QueueStore, q: str) -> None:
    await publish(store, q, "later", delay=0.3)
    assert await store.claim(q, 30) is None
    assert (await store.counts(q)).delayed == 1
    delivery = await claimed(store, q, 0.01)
    assert delivery.body == "later"
    assert await store.extend(q, delivery.id, 30) is True
    await asyncio.sleep(0.05)  # past the deadline it had before
    assert await store.claim(q, 30) is None  # the extension kept it
    assert await store.extend(q, "no-such-message", 30) is False


async def test_counts_and_purge(store: QueueStore, q: str) -> None:
    for n in range(3):
        await publish(store, q, str(n))
    await publish(store, q, "later", delay=60)
    assert await store.claim(q, 30) is not None
    counts = await store.counts(q)
    assert (counts.ready, counts.delayed, counts.in_flight, counts.dead) == (2, 1, 1, 0)
    assert await store.purge(q) == 3
    counts = await store.counts(q)
    assert (counts.ready, counts.delayed, counts.in_flight) == (0, 0, 1)


async def test_racing_consumers_take_each_message_once(store: QueueStore, q: str) -> None:
    sent = {await publish(store, q, str(n)) for n in range(120)}
    taken: list[str] = []

    async def consumer() -> None:
        while (delivery := await store.claim(q, 30)) is not None:
            taken.append(delivery.id)
            assert await store.ack(q, delivery.id)

    await asyncio.gather(*(consumer() for _ in range(6)))
    assert sorted(taken) == sorted(sent)


async def test_delete_prefix_removes_every_message_and_setting_of_its_queues(
    store: QueueStore, q: str
) -> None:
    tenant = q.split(":")[0] + ":"
    other = q.split(":")[0] + "x:jobs"  # starts like the prefix, yet is another name
    await store.configure(q, 1)
    await publish(store, q, "ready")
    await publish(store, q, "delayed", delay=60)
    claimed = await store.claim(q, 30)
    assert claimed is not None
    assert await store.nack(q, claimed.id, requeue=True) == "dead_lettered"  # 1 delivery
    await publish(store, q, "in flight")
    assert await store.claim(q, 30) is not None
    await publish(store, q, "ready again")
    await publish(store, other, "kept")
    await store.delete_prefix(tenant)
    counts = await store.counts(q)
    assert (counts.ready, counts.delayed, counts.in_flight, counts.dead) == (0, 0, 0, 0)
    assert await store.claim(q, 30) is None
    assert await store.dead_letters(q, 10) == []
    await publish(store, q, "after")  # the queue's setting went too: 5 deliveries again
    again = await store.claim(q, 30)
    assert again is not None
    assert await store.nack(q, again.id, requeue=True) == "requeued"
    kept = await store.claim(other, 30)
    assert kept is not None
    assert kept.body == "kept"
    await store.delete_prefix(tenant + "nothing-here:")


async def dead_lettered(store: QueueStore, q: str, bodies: list[str]) -> list[str]:
    """Publish each body and nack it without requeue: the ids, oldest first, all dead."""
    ids = []
    for body in bodies:
        message_id, _ = await store.publish(q, body, priority=5, headers={"h": body}, delay=0)
        assert await store.claim(q, 30) is not None
        assert await store.nack(q, message_id, requeue=False) == "dead_lettered"
        ids.append(message_id)
    return ids


async def test_replay_moves_named_dead_letters_back_afresh(store: QueueStore, q: str) -> None:
    await store.configure(q, 2)
    first, second, third = await dead_lettered(store, q, ['"a"', '"b"', '"c"'])
    named = [second, "no-such-message", second, "x" * 40]  # unknown ids skipped, repeats once
    assert await store.replay(q, named, 10) == 1
    counts = await store.counts(q)
    assert (counts.ready, counts.in_flight, counts.dead) == (1, 0, 2)
    again = await store.claim(q, 30)
    assert again is not None
    assert (again.id, again.body, again.headers) == (second, '"b"', {"h": '"b"'})
    assert again.retry_count == 0  # its deliveries start again: two more before it is dead
    assert await store.nack(q, second, requeue=True) == "requeued"
    assert await store.replay(q, [second], 10) == 0  # ready, not dead: untouched
    assert await store.replay(q, [], 10) == 0
    assert [d.id for d in await store.dead_letters(q, 10)] == [first, third]
    assert await store.replay(q, [third, first], 1) == 1  # the oldest named one
    assert [d.id for d in await store.dead_letters(q, 10)] == [third]


async def test_replay_of_every_dead_letter_stops_at_the_limit(store: QueueStore, q: str) -> None:
    ids = await dead_lettered(store, q, [str(n) for n in range(5)])
    other = await dead_lettered(store, q + "x", ["kept"])
    assert await store.replay(q, None, 2) == 2
    assert [d.id for d in await store.dead_letters(q, 10)] == ids[2:]  # the oldest went first
    assert await store.replay(q, None, 100) == 3
    assert await store.replay(q, None, 100) == 0
    counts = await store.counts(q)
    assert (counts.ready, counts.dead) == (5, 0)
    assert [d.id for d in await store.dead_letters(q + "x", 10)] == other  # another queue's
    assert await store.replay(q, other, 10) == 0  # named on the wrong queue
    taken = [await store.claim(q, 30) for _ in ids]
    assert [t.id for t in taken if t is not None] == ids  # publish order kept


async def test_racing_replays_move_each_dead_letter_once(store: QueueStore, q: str) -> None:
    ids = await dead_lettered(store, q, [str(n) for n in range(20)])
    moved = await asyncio.gather(
        *(store.replay(q, ids, 100) for _ in range(4)),
        *(store.replay(q, None, 100) for _ in range(4)),
    )
    assert sum(moved) == 20
    counts = await store.counts(q)
    assert (counts.ready, counts.in_flight, counts.dead) == (20, 0, 0)
    taken = []
    while (delivery := await store.claim(q, 30)) is not None:
        taken.append(delivery.id)
    assert sorted(taken) == sorted(ids)


async def test_delete_dead_letters_drops_only_dead_ones(store: QueueStore, q: str) -> None:
    first, second, third = await dead_lettered(store, q, ["1", "2", "3"])
    ready = await publish(store, q, "ready")
    assert await store.delete_dead_letters(q, [second, ready, "no-such-message", second]) == 1
    assert await store.delete_dead_letters(q, []) == 0
    assert [d.id for d in await store.dead_letters(q, 10)] == [first, third]
    assert await store.replay(q, [second], 10) == 0  # gone for good
    assert await store.delete_dead_letters(q, None) == 2
    assert await store.delete_dead_letters(q, None) == 0
    counts = await store.counts(q)
    assert (counts.ready, counts.in_flight, counts.dead) == (1, 0, 0)
    delivery = await store.claim(q, 30)
    assert delivery is not None
    assert delivery.id == ready


async def test_purge_and_discard_go_past_a_batch(store: QueueStore, q: str) -> None:
    # Redis drops them in short scripts of 100 (one long script would hold the server)
    for start in range(0, 250, 50):
        await asyncio.gather(*(publish(store, q, str(n)) for n in range(start, start + 50)))
    await publish(store, q, "later", delay=60)
    assert await store.purge(q) == 251
    counts = await store.counts(q)
    assert (counts.ready, counts.delayed) == (0, 0)
    assert len(await dead_lettered(store, q, [str(n) for n in range(105)])) == 105
    assert await store.delete_dead_letters(q, None) == 105
    assert (await store.counts(q)).dead == 0


async def test_a_burst_of_concurrent_publishes_all_land(store: QueueStore, q: str) -> None:
    # more at once than redis-py's default pool has connections (100): none refused, the rest
    # wait their turn
    ids = await asyncio.gather(*(publish(store, q, str(n)) for n in range(BURST)))
    assert len(set(ids)) == BURST
    assert (await store.counts(q)).ready == BURST


BURST = 300
