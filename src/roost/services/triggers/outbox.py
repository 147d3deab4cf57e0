"""The outbox: trigger events written with the change that made them, queued after it commits.

An event is accepted in two steps. Inside the write's own transaction, `stage` adds its row to
the tenant's `roost_trigger_outbox` (the queued message, ready to send) and its `pending` row
with 0 attempts to `roost_trigger_deliveries`; so a write that rolls back fires nothing, and a
write that commits cannot lose its events. After the commit, `release` puts them on the
triggers queue and deletes their outbox rows. A process that dies between the two (kill -9)
leaves rows behind: `Sweeper` re-queues those older than `triggers_lease_seconds` at start and
every half of that. A row re-queued while its own `release` was slow is a duplicate with the
same event id, which receivers drop (`webhook-id`).

The sweep reads only tenants that may have rows: `mark` sets the tenant's field in the KV hash
`$triggers:outbox` (no tenant's KV key starts with `$`) to the time, before the transaction,
at most every third of a lease per tenant and process; the sweep removes a field once the
tenant has no row and the field is older than three leases (so a writer that marked it lately
keeps it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, select

from roost.backends.sql.tables import trigger_deliveries, trigger_outbox, utcnow
from roost.errors import NotFoundError
from roost.services.context import Platform
from roost.services.tenants import ensure_exists
from roost.services.triggers import events, model
from roost.services.triggers.model import TriggerRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("roost.triggers")

MARKER = "$triggers:outbox"
_BATCH = 500  # rows re-queued per tenant and sweep

_marked: dict[tuple[int, str], float] = {}  # (id of the KV store, tenant) -> monotonic time

Events = Sequence[tuple[TriggerRow, dict[str, Any]]]


async def mark(platform: Platform, tenant: str) -> None:
    """Note that `tenant` may soon have outbox rows (before the transaction that adds them)."""
    key = (id(platform.kv), tenant)
    now = platform.clock.monotonic()
    last = _marked.get(key)
    if last is not None and now - last < platform.settings.triggers_lease_seconds / 3:
        return
    await platform.kv.hset(MARKER, {tenant: repr(platform.clock.time())})
    _marked[key] = now


def _message(tenant: str, trigger: TriggerRow, event: dict[str, Any]) -> str:
    return msgspec.json.encode(events.QueuedEvent(tenant, trigger.id, event["id"], event)).decode()


async def stage(conn: AsyncConnection, tenant: str, made: Events) -> None:
    """Write `made` into the outbox, and their deliveries as pending, in `conn`'s transaction."""
    if not made:
        return
    now = utcnow()
    await conn.execute(
        trigger_outbox.insert(),
        [
            {
                "id": event["id"],
                "trigger_id": trigger.id,
                "body": _message(tenant, trigger, event),
                "created_at": now,
            }
            for trigger, event in made
        ],
    )
    await conn.execute(
        trigger_deliveries.insert(),
        [
            {
                "id": event["id"],
                "trigger_id": trigger.id,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for trigger, event in made
        ],
    )


async def release(platform: Platform, tenant: str, made: Events) -> None:
    """After the commit: queue `made` and delete their outbox rows."""
    if not made:
        return
    if platform.settings.triggers_test_die_after_commit:
        # a test's stand-in for a kill -9 landing between the commit and the queueing
        os.kill(os.getpid(), signal.SIGKILL)
    await events.publish(platform, tenant, made)
    async with platform.db.write(tenant) as conn:
        await conn.execute(
            delete(trigger_outbox).where(trigger_outbox.c.id.in_([e["id"] for _, e in made]))
        )
    await model.deliveries_changed(platform, tenant, [(t.id, e["id"]) for t, e in made])


async def accept(platform: Platform, tenant: str, made: Events) -> None:
    """Accept events no write of the caller's made: staged in a transaction of their own,
    then released (storage, streams, pub/sub)."""
    if not made:
        return
    await mark(platform, tenant)
    async with platform.db.write(tenant) as conn:
        await stage(conn, tenant, made)
    await release(platform, tenant, made)


async def sweep(platform: Platform) -> int:
    """Re-queue the outbox rows older than a lease of every marked tenant; return how many."""
    grace = platform.settings.triggers_lease_seconds
    marks = await platform.kv.hgetall(MARKER)
    queued = 0
    for tenant, stamp in marks.items():
        try:
            await ensure_exists(platform, tenant)
        except NotFoundError:  # deleted, with its outbox
            await platform.kv.hdel(MARKER, [tenant])
            continue
        try:
            moved, left = await _sweep_tenant(platform, tenant, grace)
        except Exception:  # not migrated yet, or being deleted
            logger.debug("could not sweep the trigger outbox of %s", tenant, exc_info=True)
            continue
        queued += moved
        try:
            since = platform.clock.time() - float(stamp)
        except ValueError:
            since = 3 * grace + 1
        if not left and since > 3 * grace:
            await platform.kv.hdel(MARKER, [tenant])
    return queued


async def _sweep_tenant(platform: Platform, tenant: str, grace: float) -> tuple[int, bool]:
    """Re-queue this tenant's leftovers; return how many, and whether any row is left."""
    before = utcnow() - timedelta(seconds=grace)
    table = trigger_outbox
    async with platform.db.read(tenant) as conn:
        rows = (
            await conn.execute(
                select(table.c.id, table.c.body, table.c.created_at)
                .order_by(table.c.created_at)
                .limit(_BATCH + 1)
            )
        ).all()
    old = [row for row in rows if row.created_at < before][:_BATCH]
    if not old:
        return 0, bool(rows)
    name = events.queue_name(platform.settings)
    for row in old:
        await platform.queues.publish(name, row.body, priority=5, headers={}, delay=0)
    await platform.bus.publish(events.wake_channel(name), b"")
    async with platform.db.write(tenant) as conn:
        await conn.execute(delete(table).where(table.c.id.in_([row.id for row in old])))
    logger.info("re-queued %d trigger events of %s left in the outbox", len(old), tenant)
    return len(old), len(rows) > len(old)


class Sweeper:
    """Runs `sweep` at start, then every half lease, while the platform runs."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._task: asyncio.Task[None] | None = None
        self.swept = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _forever(self) -> None:
        every = self._platform.settings.triggers_lease_seconds / 2
        while True:
            try:
                self.swept += await sweep(self._platform)
            except Exception:
                logger.warning("could not sweep the trigger outbox", exc_info=True)
            await asyncio.sleep(every)
