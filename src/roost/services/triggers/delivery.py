"""The deliverer: takes events from the triggers queue and hands each to its trigger's target.

Every server runs one while the platform runs (`ROOST_TRIGGERS_CONCURRENCY` at once; 0 runs
none). It takes a message leased for `triggers_lease_seconds` and renewed while the delivery
lasts, so a process killed mid-delivery lets the queue give the event to another (or to
itself after a restart) once the lease runs out: at least once, and receivers tell repeats
by the event's id (`webhook-id` for a URL). An attempt that fails is recorded `pending` with
its error and the event goes back on the queue, delayed by `outbound.retry_delay` (exponential
with full jitter); the `triggers_max_attempts`-th failure records it `failed`. Each attempt
updates the event's row of `roost_trigger_deliveries` (status, attempts, HTTP status, last
error, duration) when it ends; the row is made `pending` with 0 attempts when the event is
accepted (`outbox.py`).

A function target runs as the trigger's owner as they stand when the event is delivered
(active, holding `functions:execute`), with the event as its params.
"""

from __future__ import annotations

import contextlib
import logging
import time

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from roost.backends.queue import Delivery
from roost.backends.sql.tables import trigger_deliveries, triggers, utcnow
from roost.errors import APIError, NotFoundError
from roost.services import principals
from roost.services.consumer import LeasedConsumer
from roost.services.context import Context, Platform
from roost.services.functions import invocations
from roost.services.functions.tokens import CallerRef
from roost.services.outbound import AllowList, post_event, retry_delay
from roost.services.tenants import ensure_exists
from roost.services.triggers import events, model
from roost.services.triggers.model import TriggerRow, decode_row
from roost.services.triggers.secrets import open_secret
from roost.wire.functions import ExecuteRequest
from roost.wire.triggers import FunctionTarget, UrlTarget

logger = logging.getLogger("roost.triggers")

_POLL = 1.0  # seconds between looks when nothing wakes the loop
_ERROR_CHARS = 1000


class Attempt(msgspec.Struct, frozen=True):
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    final: bool = False  # no retry can succeed (the destination is refused)
    retry_after: float | None = None  # seconds the receiver asked for, if it did


class Deliverer(LeasedConsumer):
    """Delivers the deployment's trigger events, at most `concurrency` at once (the taking,
    leasing and giving back are the platform's one queue consumer, `services/consumer.py`)."""

    what = "trigger events"

    def __init__(self, platform: Platform, concurrency: int) -> None:
        queue = events.queue_name(platform.settings)
        super().__init__(
            platform,
            queue=queue,
            wake_channel=events.wake_channel(queue),
            lease=platform.settings.triggers_lease_seconds,
            concurrency=concurrency,
            poll=min(_POLL, platform.settings.triggers_tick_seconds),
        )
        self._allow = AllowList.parse(platform.settings.webhook_allow)
        self.delivered = 0  # events handed to their target
        self.failed_attempts = 0

    async def handle(self, message: Delivery) -> None:
        queued = events.decode(message.body)
        if queued is None:
            logger.warning("dropped message %s of the triggers queue: not ours", message.id)
            return
        platform, tenant = self.platform, queued.tenant
        try:
            await ensure_exists(platform, tenant)
        except NotFoundError:  # the tenant was deleted with its triggers
            return
        trigger = await _trigger(platform, tenant, queued.trigger_id)
        if trigger is None:  # deleted since: its deliveries went with it
            return
        attempt_no = queued.attempt + 1
        attempt = await self.attempt(trigger, tenant, queued.id, queued.event)
        if attempt.delivered:
            self.delivered += 1
            await record(platform, tenant, trigger.id, queued.id, "delivered", attempt_no, attempt)
            return
        self.failed_attempts += 1
        if attempt.final or attempt_no >= platform.settings.triggers_max_attempts:
            await record(platform, tenant, trigger.id, queued.id, "failed", attempt_no, attempt)
            return
        await record(platform, tenant, trigger.id, queued.id, "pending", attempt_no, attempt)
        delay = retry_delay(attempt_no, base=platform.settings.triggers_retry_base)
        if attempt.retry_after is not None:  # the receiver's Retry-After, up to 10 minutes
            delay = max(delay, min(attempt.retry_after, 600.0))
        await events.publish(
            platform, tenant, [(trigger, queued.event)], attempt=attempt_no, delay=delay
        )

    async def attempt(
        self, trigger: TriggerRow, tenant: str, event_id: str, event: dict[str, object]
    ) -> Attempt:
        """One attempt at handing `event` to the trigger's target; never raises for the
        target's failure (only for the platform's own)."""
        target = trigger.target
        if isinstance(target, UrlTarget):
            secret = await open_secret(self.platform, tenant, trigger)
            result = await post_event(
                target.url,
                body=msgspec.json.encode(event),
                event_id=event_id,
                secret=secret,
                allow=self._allow,
                timeout=self.platform.settings.triggers_timeout,
                clock=self.platform.clock,
            )
            return Attempt(
                result.delivered,
                result.status,
                result.error,
                result.duration_ms,
                final=result.refused,
                retry_after=result.retry_after,
            )
        assert isinstance(target, FunctionTarget)
        return await run_function(self.platform, tenant, trigger, target, event)


async def run_function(
    platform: Platform,
    tenant: str,
    trigger: TriggerRow,
    target: FunctionTarget,
    event: dict[str, object],
) -> Attempt:
    started = time.perf_counter()

    def failed(message: str) -> Attempt:
        duration = (time.perf_counter() - started) * 1000
        return Attempt(False, None, message[:_ERROR_CHARS], duration)

    try:
        owner = await principals.of_caller(
            platform, tenant, CallerRef(trigger.owner_id, None, None)
        )
    except APIError as exc:
        return failed(f"the trigger's owner cannot act: {exc.message}")
    if not owner.allows(invocations.EXECUTE_SCOPE):
        return failed(f"the trigger's owner lacks {invocations.EXECUTE_SCOPE}")
    ctx = Context(platform, tenant, owner, request_id=f"trigger-{trigger.name}")
    try:
        await invocations.execute(ctx, ExecuteRequest(name=target.name, params=event))
    except APIError as exc:
        return failed(f"{exc.code}: {exc.message}")
    return Attempt(True, None, None, (time.perf_counter() - started) * 1000)


async def _trigger(platform: Platform, tenant: str, trigger_id: str) -> TriggerRow | None:
    """The trigger as cached (a few seconds old at most: a change made through another
    replica may apply to the events of those seconds), else as read now."""
    for trigger in await model.cached(platform, tenant):
        if trigger.id == trigger_id:
            return trigger
    async with platform.db.read(tenant) as conn:
        row = (
            (await conn.execute(select(triggers).where(triggers.c.id == trigger_id)))
            .mappings()
            .first()
        )
    return None if row is None else decode_row(row)


async def record(
    platform: Platform,
    tenant: str,
    trigger_id: str,
    event_id: str,
    status: str,
    attempts: int,
    attempt: Attempt | None,
) -> None:
    """The event's row as of this attempt. It was made `pending` with 0 attempts when the
    event was accepted (`outbox.stage`); one of before that change is made here."""
    values: dict[str, object] = {"status": status, "attempts": attempts, "updated_at": utcnow()}
    if attempt is not None:
        values["status_code"] = attempt.status_code
        values["last_error"] = None if attempt.error is None else attempt.error[:_ERROR_CHARS]
        values["duration_ms"] = round(attempt.duration_ms, 3)
    table = trigger_deliveries
    async with platform.db.write(tenant) as conn:
        moved = await conn.execute(update(table).where(table.c.id == event_id).values(values))
    if not moved.rowcount:
        with contextlib.suppress(IntegrityError):  # made meanwhile, or its trigger is gone
            async with platform.db.write(tenant) as conn:
                await conn.execute(
                    table.insert().values(id=event_id, trigger_id=trigger_id, **values)
                )
    await model.deliveries_changed(platform, tenant, [(trigger_id, event_id)])
