"""The sources that are followed rather than told: queues, stream rooms and pub/sub patterns.

`Sources` is kept up to date by the cron `Scheduler` (which reads every tenant's triggers)
and runs on every process that delivers events:

- **queue**: one consumer per trigger on each process, taking the tenant's queue like any
  consumer (`queue.consume`'s claim, leased for `triggers_lease_seconds`): the message is
  handed to the function target as the event, acked when the function succeeds, given back
  when it fails, so the queue's own `max_deliveries` dead-letters it. The queue keeps the
  message, so nothing goes through the triggers queue; each delivery is recorded as for
  any trigger, under the id `<trigger id>-<message id>`.
- **stream**: the room's log is read from the trigger's cursor (`last_tick` holds the last
  offset taken); a process claims a run of events by moving the cursor with a
  compare-and-set, and queues them on the triggers queue in that transaction, so each event
  is queued once across replicas and none is skipped (one kept past the room's retention
  is, if every process was down that long).
- **pubsub**: pub/sub keeps nothing, so only a message published while a process listens
  can fire. Every replica hears every message; the first to take a KV lock named by the
  trigger and the message queues the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select, update

from roost.backends.bus import Wakeup
from roost.backends.queue import Delivery
from roost.backends.sql.tables import triggers
from roost.services.context import Platform
from roost.services.pubsub import topic_matches
from roost.services.triggers import delivery, events, outbox
from roost.services.triggers.model import TriggerRow
from roost.wire.triggers import FunctionTarget, PubsubSource, QueueSource, StreamSource

logger = logging.getLogger("roost.triggers")

_PAGE = 100  # stream events claimed at once
_DEDUPE_SECONDS = 3600.0  # how long a pub/sub message's claim is kept


class Sources:
    """Queue consumers, stream cursors and pub/sub listeners of every tenant's triggers."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._consumers: dict[str, tuple[TriggerRow, asyncio.Task[None]]] = {}
        self._streams: dict[str, dict[str, TriggerRow]] = {}  # tenant -> id -> trigger
        self._pubsub: dict[str, dict[str, TriggerRow]] = {}
        self._listening: dict[str, Any] = {}  # tenant -> stop listening

    def update(self, tenant: str, rows: tuple[TriggerRow, ...]) -> None:
        """The tenant's triggers as they are now: start and stop what follows them."""
        enabled = [t for t in rows if t.enabled]
        queues = {t.id: t for t in enabled if isinstance(t.source, QueueSource)}
        for trigger_id, (old, task) in list(self._consumers.items()):
            if _tenant_of(task) != tenant:
                continue
            now = queues.get(trigger_id)
            if now is not None and _same(now, old):
                continue
            task.cancel()
            del self._consumers[trigger_id]
        for trigger in queues.values():
            if trigger.id not in self._consumers:
                task = asyncio.get_running_loop().create_task(self._consume(tenant, trigger))
                task.set_name(f"trigger-queue:{tenant}")
                self._consumers[trigger.id] = (trigger, task)
        self._streams[tenant] = {t.id: t for t in enabled if isinstance(t.source, StreamSource)}
        self._pubsub[tenant] = {t.id: t for t in enabled if isinstance(t.source, PubsubSource)}
        if self._pubsub[tenant] and tenant not in self._listening:
            self._listening[tenant] = self._platform.bus.listen(
                f"pubsub:{tenant}", lambda raw: self._heard(tenant, raw)
            )
        elif not self._pubsub[tenant] and tenant in self._listening:
            self._listening.pop(tenant)()

    def forget_others(self, tenants: set[str]) -> None:
        """Stop following the tenants not in `tenants` (deleted)."""
        for tenant in set(self._streams) - tenants:
            self.update(tenant, ())

    async def close(self) -> None:
        for stop in self._listening.values():
            stop()
        self._listening.clear()
        tasks = [task for _, task in self._consumers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._consumers.clear()

    # -- streams ---------------------------------------------------------------------------

    async def look(self) -> None:
        """Claim and queue what the followed stream rooms got since their cursors."""
        for tenant, followed in list(self._streams.items()):
            for trigger in list(followed.values()):
                try:
                    await self._follow_stream(tenant, trigger)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.warning("could not follow stream of %s", trigger.name, exc_info=True)

    async def _follow_stream(self, tenant: str, trigger: TriggerRow) -> None:
        assert isinstance(trigger.source, StreamSource)
        platform = self._platform
        cursor = int(trigger.last_tick) if trigger.last_tick is not None else -1
        room = f"{tenant}:{trigger.source.room}"
        page = await platform.streams.read(room, cursor + 1, None, _PAGE)
        if not page.events:
            return
        taken = page.events[-1].offset
        made: list[tuple[TriggerRow, dict[str, Any]]] = []
        await outbox.mark(platform, tenant)
        async with platform.db.write(tenant) as conn:
            moved = await conn.execute(
                update(triggers)
                .where(triggers.c.id == trigger.id, triggers.c.last_tick == trigger.last_tick)
                .values(last_tick=float(taken))
            )
            if moved.rowcount == 1:
                made = [
                    (
                        trigger,
                        events.make_event(
                            trigger,
                            stored.event_type,
                            {
                                "room": trigger.source.room,
                                "offset": stored.offset,
                                "data": msgspec.json.decode(stored.data),
                                "metadata": stored.metadata,
                            },
                            at=datetime.fromtimestamp(stored.timestamp, UTC),
                            event_id=f"{trigger.id}-{stored.offset}",
                        ),
                    )
                    for stored in page.events
                ]
                await outbox.stage(conn, tenant, made)
            else:  # another process took them: follow on from where it is now
                current = await conn.scalar(
                    select(triggers.c.last_tick).where(triggers.c.id == trigger.id)
                )
                taken = -1 if current is None else int(current)
        await outbox.release(platform, tenant, made)
        followed = self._streams.get(tenant, {})
        if trigger.id in followed:
            followed[trigger.id] = _moved(trigger, float(taken))

    # -- pub/sub ---------------------------------------------------------------------------

    def _heard(self, tenant: str, raw: bytes) -> None:
        try:
            message = msgspec.json.decode(raw)
            words = str(message["topic"]).split(".")
        except (msgspec.DecodeError, KeyError, TypeError):
            return
        for trigger in self._pubsub.get(tenant, {}).values():
            assert isinstance(trigger.source, PubsubSource)
            if topic_matches(trigger.source.pattern.split("."), words):
                self._platform.spawn(self._fire_pubsub(tenant, trigger, message))

    async def _fire_pubsub(self, tenant: str, trigger: TriggerRow, message: Any) -> None:
        message_id = str(message.get("message_id", ""))
        lock = f"$trigger:{trigger.id}:{message_id}"
        try:
            if not await self._platform.kv.acquire(lock, secrets.token_hex(8), _DEDUPE_SECONDS):
                return  # another replica took it
            data = {k: message.get(k) for k in ("topic", "message", "metadata", "message_id")}
            event = events.make_event(
                trigger,
                "message",
                data,
                at=self._platform.clock.now(),
                event_id=f"{trigger.id}-{message_id}",
            )
            await outbox.accept(self._platform, tenant, [(trigger, event)])
        except Exception:
            logger.warning("could not fire trigger %s for a message", trigger.name, exc_info=True)

    # -- queues ----------------------------------------------------------------------------

    async def _consume(self, tenant: str, trigger: TriggerRow) -> None:
        assert isinstance(trigger.source, QueueSource)
        platform = self._platform
        name = f"{tenant}:{trigger.source.queue}"
        lease = platform.settings.triggers_lease_seconds
        poll = min(1.0, platform.settings.triggers_tick_seconds)
        with Wakeup(platform.bus, f"queue:{name}") as wakeup:
            while True:
                try:
                    message = await platform.queues.claim(name, lease)
                except Exception:
                    logger.warning("could not take from queue %s", name, exc_info=True)
                    await asyncio.sleep(1.0)
                    continue
                if message is None:
                    await wakeup.wait(poll)
                    continue
                try:
                    await self._handle(tenant, trigger, name, message)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await platform.queues.nack(name, message.id, requeue=True)
                    raise
                except Exception:  # the platform's own: the lease gives it back later
                    logger.exception("queue trigger %s failed on %s", trigger.name, message.id)

    async def _handle(self, tenant: str, trigger: TriggerRow, name: str, message: Delivery) -> None:
        platform = self._platform
        assert isinstance(trigger.source, QueueSource)
        assert isinstance(trigger.target, FunctionTarget)
        event_id = f"{trigger.id}-{message.id}"
        data = {
            "queue": trigger.source.queue,
            "message_id": message.id,
            "message": msgspec.json.decode(message.body),
            "headers": message.headers,
            "retry_count": message.retry_count,
        }
        event = events.make_event(
            trigger, "message", data, at=platform.clock.now(), event_id=event_id
        )
        attempts = message.retry_count + 1
        attempt = await delivery.run_function(platform, tenant, trigger, trigger.target, event)
        if attempt.delivered:
            await platform.queues.ack(name, message.id)
            await delivery.record(
                platform, tenant, trigger.id, event_id, "delivered", attempts, attempt
            )
            return
        action = await platform.queues.nack(name, message.id, requeue=True)
        status = "failed" if action == "dead_lettered" else "pending"
        await delivery.record(platform, tenant, trigger.id, event_id, status, attempts, attempt)
        if action == "requeued":
            await platform.bus.publish(f"queue:{name}", b"")


def _same(one: TriggerRow, other: TriggerRow) -> bool:
    return (one.source, one.target, one.owner_id) == (other.source, other.target, other.owner_id)


def _tenant_of(task: asyncio.Task[None]) -> str:
    return task.get_name().split(":", 1)[-1]


def _moved(trigger: TriggerRow, cursor: float) -> TriggerRow:
    return TriggerRow(
        id=trigger.id,
        name=trigger.name,
        description=trigger.description,
        source=trigger.source,
        target=trigger.target,
        enabled=trigger.enabled,
        owner_id=trigger.owner_id,
        owner_name=trigger.owner_name,
        last_tick=cursor,
        secret_sealed=trigger.secret_sealed,
        row=trigger.row,
    )
