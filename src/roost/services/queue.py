"""Work queues, per tenant: publish, long-poll consume, ack/nack, deadlines and dead letters
(listed, replayed or deleted).

A queue exists once something is published to it. Delivery is at least once: a message stays
in flight until acked, and one whose ack deadline passes is delivered again with its
`retry_count` one higher, until `max_deliveries` (default 5) sends it to the dead-letter queue.
"""

from __future__ import annotations

import asyncio

from roost.backends.bus import Wakeup
from roost.backends.queue import Delivery
from roost.errors import NotFoundError
from roost.services import guards
from roost.services.context import Context
from roost.services.feeds import Feed, Push, opening
from roost.services.payloads import from_json, json_text
from roost.services.registry import operation, subscription
from roost.wire.queue import (
    ConfigureRequest,
    ConsumeAnswer,
    ConsumeRequest,
    DeadLettersAnswer,
    DeadLettersRequest,
    DeleteDeadLettersAnswer,
    DeleteDeadLettersRequest,
    ExtendRequest,
    MessageRef,
    NackAnswer,
    NackRequest,
    PublishAnswer,
    PublishRequest,
    PurgeAnswer,
    QueueMessage,
    QueueRef,
    ReplayAnswer,
    ReplayRequest,
    StatsAnswer,
    Succeeded,
)

_POLL = 1.0
"""A waiting consumer looks again this often even unwoken (delays end, deadlines pass)."""
_WATCH = 1.0
"""A depth watcher counts again this often even unwoken (acks, delays and deadlines announce
nothing on the bus), on the whole seconds of the loop's clock, so that the watchers of one
queue count together."""
_WATCH_GAP = 0.25
"""And at most this often, however busy the queue: the publishes meanwhile make one count."""
_COUNTING: dict[tuple[int, str], asyncio.Future[StatsAnswer]] = {}
"""The count of each queue under way (by platform, then full name), shared by the watchers
that ask for it meanwhile (a thousand watchers of one queue, woken by one publish, make one
count)."""


_SEEN: dict[str, None] = {}
_SEEN_MAX = 200
"""The queues `/metrics` reports the depth of: the first this process served (an insertion-
ordered dict as a bounded set: a caller inventing names cannot grow it past this)."""


def seen_queues() -> list[str]:
    """The full names (`tenant:queue`) of the queues this process served, at most `_SEEN_MAX`."""
    return list(_SEEN)


def _queue(ctx: Context, queue: str) -> str:
    name = f"{ctx.tenant}:{queue}"
    if len(_SEEN) < _SEEN_MAX:
        _SEEN[name] = None
    return name


def _wake_channel(name: str) -> str:
    return f"queue:{name}"


def _wire(delivery: Delivery) -> QueueMessage:
    return QueueMessage(
        message_id=delivery.id,
        message=from_json(delivery.body),
        priority=delivery.priority,
        retry_count=delivery.retry_count,
        headers=delivery.headers,
        published_at=delivery.published_at,
    )


def _not_in_flight(queue: str, message_id: str) -> NotFoundError:
    return NotFoundError(
        f"message {message_id!r} is not in flight on queue {queue!r}: it was acked already, "
        "dead-lettered, never existed, or went back to the queue after its deadline",
        code="message_not_found",
        details={"field": "message_id"},
    )


async def _may(ctx: Context, queue: str, action: str) -> None:
    """A queue bound to policies is one resource (`R.id` and `R.attr.queue` its name): a
    work queue hands its next message to whoever asks, so the policies decide who may
    `consume` (and ack, nack, extend), `read` (stats, dead letters), `replay` its dead
    letters, `purge` it (also deleting dead letters) or `configure` it; `publish` is checked
    per message (`R.attr.message`, `priority`, `headers`)."""
    await guards.require(ctx, "queue", queue, action, queue, {"queue": queue}, field="queue")


@operation("queue.publish", scope="queue:write")
async def publish(ctx: Context, params: PublishRequest) -> PublishAnswer:
    """Add a message (priority 0-9, 9 first; `delay` seconds before it may be consumed)."""
    name = _queue(ctx, params.queue)
    body = json_text(params.message, "message", ctx.platform.settings.message_max_bytes)
    attr = {
        "queue": params.queue,
        "message": params.message,
        "priority": params.priority,
        "headers": params.headers or {},
    }
    await guards.require(ctx, "queue", params.queue, "publish", "", attr, field="queue")
    message_id, ahead = await ctx.platform.queues.publish(
        name, body, priority=params.priority, headers=params.headers or {}, delay=params.delay
    )
    if not params.delay:
        await ctx.platform.bus.publish(_wake_channel(name), b"")
    return PublishAnswer(message_id=message_id, position=ahead)


@operation("queue.consume", scope="queue:consume")
async def consume(ctx: Context, params: ConsumeRequest) -> ConsumeAnswer:
    """The next message, waiting up to `timeout` seconds for one; it must be acked within
    `ack_deadline` seconds or it is delivered again."""
    await _may(ctx, params.queue, "consume")
    platform, name = ctx.platform, _queue(ctx, params.queue)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + params.timeout
    with Wakeup(platform.bus, _wake_channel(name)) as wakeup:  # listening before looking
        while True:
            delivery = await platform.queues.claim(name, params.ack_deadline)
            if delivery is not None:
                return ConsumeAnswer(message=_wire(delivery))
            left = give_up - loop.time()
            if left <= 0:
                return ConsumeAnswer(message=None)
            await wakeup.wait(min(left, _POLL))


@operation("queue.ack", scope="queue:consume")
async def ack(ctx: Context, params: MessageRef) -> Succeeded:
    """Done with a message: it is removed for good."""
    await _may(ctx, params.queue, "consume")
    if not await ctx.platform.queues.ack(_queue(ctx, params.queue), params.message_id):
        raise _not_in_flight(params.queue, params.message_id)
    return Succeeded()


@operation("queue.nack", scope="queue:consume")
async def nack(ctx: Context, params: NackRequest) -> NackAnswer:
    """Give a message back: requeued (if it has deliveries left) or dead-lettered."""
    await _may(ctx, params.queue, "consume")
    name = _queue(ctx, params.queue)
    action = await ctx.platform.queues.nack(name, params.message_id, requeue=params.requeue)
    if action is None:
        raise _not_in_flight(params.queue, params.message_id)
    if action == "requeued":
        await ctx.platform.bus.publish(_wake_channel(name), b"")
    return NackAnswer(success=True, action=action)


@operation("queue.extend", scope="queue:consume")
async def extend(ctx: Context, params: ExtendRequest) -> Succeeded:
    """More time for a message in flight: its deadline becomes `seconds` from now."""
    await _may(ctx, params.queue, "consume")
    name = _queue(ctx, params.queue)
    if not await ctx.platform.queues.extend(name, params.message_id, params.seconds):
        raise _not_in_flight(params.queue, params.message_id)
    return Succeeded()


@operation("queue.stats", scope="queue:read", read_only=True)
async def stats(ctx: Context, params: QueueRef) -> StatsAnswer:
    """How many messages are ready, delayed, in flight and dead."""
    await _may(ctx, params.queue, "read")
    return await _stats(ctx, params.queue)


async def _stats(ctx: Context, queue: str) -> StatsAnswer:
    counts = await ctx.platform.queues.counts(_queue(ctx, queue))
    return StatsAnswer(
        queue=queue,
        ready=counts.ready,
        delayed=counts.delayed,
        in_flight=counts.in_flight,
        dead=counts.dead,
    )


async def _shared_stats(ctx: Context, queue: str) -> StatsAnswer:
    """The queue's stats, from the count under way if a watcher of it started one."""
    key = (id(ctx.platform), _queue(ctx, queue))
    counting = _COUNTING.get(key)
    if counting is None:
        counting = _COUNTING[key] = asyncio.ensure_future(_stats(ctx, queue))
        counting.add_done_callback(lambda _: _COUNTING.pop(key, None))
    return await asyncio.shield(counting)


@subscription("queue.watch", scope="queue:read", event=StatsAnswer)
async def open_queue_watch(ctx: Context, params: QueueRef, push: Push) -> Feed:
    """A live feed of a queue's depth: its stats now, then again each time they change
    (counted within a quarter second after a publish or a requeue, and at least every
    second; the watchers of one queue share each count)."""
    await _may(ctx, params.queue, "read")
    async with opening() as feed:
        wakeup = Wakeup(ctx.platform.bus, _wake_channel(_queue(ctx, params.queue)))
        feed.on_close(wakeup.__exit__)

    async def follow() -> None:
        last: StatsAnswer | None = None
        loop = asyncio.get_running_loop()
        while True:
            now = await _shared_stats(ctx, params.queue)
            if now != last:
                push(now)
                last = now
            await asyncio.sleep(_WATCH_GAP)
            await wakeup.wait(_WATCH - loop.time() % _WATCH)

    feed.run(follow)
    return feed


@operation("queue.purge", scope="queue:write")
async def purge(ctx: Context, params: QueueRef) -> PurgeAnswer:
    """Drop every ready and delayed message (those in flight or dead stay)."""
    await _may(ctx, params.queue, "purge")
    return PurgeAnswer(purged=await ctx.platform.queues.purge(_queue(ctx, params.queue)))


@operation("queue.dead_letters", scope="queue:read", read_only=True)
async def dead_letters(ctx: Context, params: DeadLettersRequest) -> DeadLettersAnswer:
    """The dead-letter queue, oldest first."""
    await _may(ctx, params.queue, "read")
    dead = await ctx.platform.queues.dead_letters(_queue(ctx, params.queue), params.limit)
    return DeadLettersAnswer(messages=[_wire(d) for d in dead])


@operation("queue.replay", scope="queue:write")
async def replay(ctx: Context, params: ReplayRequest) -> ReplayAnswer:
    """Put dead letters back on the queue, oldest first and at most `limit`: those of
    `message_ids`, or with none named any. Each starts afresh (`retry_count` 0, every
    delivery again) and is deliverable at once; ids that are not dead letters of this queue
    are skipped. Answers how many moved."""
    await _may(ctx, params.queue, "replay")
    name = _queue(ctx, params.queue)
    moved = await ctx.platform.queues.replay(name, params.message_ids, params.limit)
    if moved:
        await ctx.platform.bus.publish(_wake_channel(name), b"")
    return ReplayAnswer(replayed=moved)


@operation("queue.delete_dead_letters", scope="queue:write")
async def delete_dead_letters(
    ctx: Context, params: DeleteDeadLettersRequest
) -> DeleteDeadLettersAnswer:
    """Drop dead letters for good: those of `message_ids`, or with none named every one
    (ids that are not dead letters of this queue are skipped). Answers how many went."""
    await _may(ctx, params.queue, "purge")
    name = _queue(ctx, params.queue)
    deleted = await ctx.platform.queues.delete_dead_letters(name, params.message_ids)
    if deleted:
        await ctx.platform.bus.publish(_wake_channel(name), b"")  # the depth watchers
    return DeleteDeadLettersAnswer(deleted=deleted)


@operation("queue.configure", scope="queue:write")
async def configure(ctx: Context, params: ConfigureRequest) -> Succeeded:
    """Set the queue's `max_deliveries` (for messages published from now on)."""
    await _may(ctx, params.queue, "configure")
    await ctx.platform.queues.configure(_queue(ctx, params.queue), params.max_deliveries)
    return Succeeded()
