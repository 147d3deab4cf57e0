"""Cron schedules: reading them, and firing each tick exactly once across replicas.

Schedules are read by cronsim (five fields; `@hourly` and the like are written out as five
fields here, since cronsim reads only those), in the trigger's time zone (zoneinfo), so DST
transitions go as Debian's cron takes them: a daily 02:30 that a spring-forward skips fires at
03:00, and one that a fall-back repeats fires once.

Every process with a deliverer runs a `Scheduler`. It keeps every tenant's cron triggers in
memory (read again every `_RELOAD` seconds, and at once for a tenant whose triggers change;
it hands them to `consumers.Sources` too, which follows queues, streams and pub/sub),
and looks each `triggers_tick_seconds` on the platform's clock for ticks that are due. A tick
is claimed in the tenant's database: `last_tick` moves forward to it by a compare-and-set
(`WHERE last_tick < tick`), and only the replica whose update changed the row queues the event,
in that transaction (if queuing fails, the claim rolls back and the tick is tried again). The
event's id is `<trigger id>-<tick>`, so a repeat (a replica that died between queuing and
commit) is recognisable. Ticks missed while every replica was down are fired on restart,
those of the last `_CATCH_UP` seconds only.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from sqlalchemy import or_, select, update

from roost.backends.sql.database import CONTROL
from roost.backends.sql.tables import tenants, triggers
from roost.errors import ValidationError
from roost.services.context import Platform
from roost.services.triggers import events, model, outbox
from roost.services.triggers.consumers import Sources
from roost.services.triggers.model import TriggerRow
from roost.wire.triggers import CronSource

logger = logging.getLogger("roost.triggers")

_RELOAD = 30.0  # seconds between full reads of every tenant's cron triggers
_CATCH_UP = 3600.0  # ticks older than this (every replica was down) are not fired
_MAX_PER_LOOK = 100  # ticks one trigger fires in one look, at most
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def zone(name: str, field: str = "source.timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r}: give an IANA name such as Europe/Paris",
            details={"field": field},
        ) from None


def expression(schedule: str) -> str:
    text = " ".join(schedule.split())
    return _NICKNAMES.get(text.lower(), text)


def check(source: CronSource) -> None:
    """Refuse a schedule or a time zone that cannot be read (400 naming the field)."""
    tz = zone(source.timezone)
    text = expression(source.schedule)
    if len(text.split(" ")) != 5:
        raise ValidationError(
            "a schedule is five fields (minute hour day month weekday) or @hourly, @daily, "
            "@weekly, @monthly, @yearly",
            details={"field": "source.schedule"},
        )
    try:
        next(CronSim(text, datetime.now(tz)))
    except (CronSimError, StopIteration) as exc:
        raise ValidationError(
            f"cannot read schedule {source.schedule!r}: {exc}",
            details={"field": "source.schedule"},
        ) from None


def next_tick(source: CronSource, after: float) -> float:
    """The first tick of the schedule strictly after `after` (epoch seconds)."""
    tz = ZoneInfo(source.timezone)
    start = datetime.fromtimestamp(after, tz)
    return next(CronSim(expression(source.schedule), start)).timestamp()


class Scheduler:
    """Fires the due ticks of every tenant's cron triggers (see the module's docstring)."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._triggers: dict[str, tuple[TriggerRow, ...]] = {}  # tenant -> cron triggers
        self._seen: dict[str, float] = {}  # trigger id -> last tick known to be claimed
        self._stale: set[str] = set()  # tenants to read again
        self._loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_listening = platform.bus.listen(
            model.CHANGED, lambda payload: self._stale.add(payload.decode())
        )
        self.fired = 0
        self.sources = Sources(platform)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def close(self) -> None:
        self._stop_listening()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.sources.close()

    async def _forever(self) -> None:
        interval = self._platform.settings.triggers_tick_seconds
        while True:
            try:
                await self.look()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not fire cron ticks", exc_info=True)
            await asyncio.sleep(interval)

    async def look(self) -> None:
        """Read what changed, then fire every tick that is due."""
        clock = self._platform.clock
        if self._loaded_at is None or clock.monotonic() - self._loaded_at >= _RELOAD:
            await self._load_all()
        for tenant in list(self._stale):
            self._stale.discard(tenant)
            await self._load(tenant)
        now = clock.time()
        for tenant, crons in list(self._triggers.items()):
            for trigger in crons:
                await self._fire_due(tenant, trigger, now)
        await self.sources.look()

    async def _load_all(self) -> None:
        # through `run`: this first look comes right at start, and `read` would bring in the
        # async engine (its import waits for first use)
        query = select(tenants.c.name)
        names = await self._platform.db.run(
            CONTROL, lambda conn: list(conn.execute(query).scalars())
        )
        self._triggers.clear()
        self.sources.forget_others(set(names))
        for name in names:
            await self._load(name)
        self._loaded_at = self._platform.clock.monotonic()

    async def _load(self, tenant: str) -> None:
        try:
            rows = await model.read_all(self._platform, tenant)
        except Exception:  # a tenant being deleted, or not migrated yet
            logger.debug("could not read the triggers of %s", tenant, exc_info=True)
            self._triggers.pop(tenant, None)
            self.sources.update(tenant, ())
            return
        self.sources.update(tenant, rows)
        crons = tuple(t for t in rows if t.enabled and isinstance(t.source, CronSource))
        if crons:
            self._triggers[tenant] = crons
        else:
            self._triggers.pop(tenant, None)
        for trigger in crons:
            if trigger.last_tick is not None:
                self._seen[trigger.id] = max(self._seen.get(trigger.id, 0.0), trigger.last_tick)

    async def _fire_due(self, tenant: str, trigger: TriggerRow, now: float) -> None:
        assert isinstance(trigger.source, CronSource)
        last = self._seen.get(trigger.id, trigger.last_tick or now)
        last = max(last, now - _CATCH_UP)
        for _ in range(_MAX_PER_LOOK):
            tick = next_tick(trigger.source, last)
            if tick > now:
                return
            await self._claim(tenant, trigger, tick)
            self._seen[trigger.id] = last = tick

    async def _claim(self, tenant: str, trigger: TriggerRow, tick: float) -> None:
        """Fire `tick` unless another replica did: one UPDATE decides."""
        platform = self._platform
        await outbox.mark(platform, tenant)
        async with platform.db.write(tenant) as conn:
            moved = await conn.execute(
                update(triggers)
                .where(
                    triggers.c.id == trigger.id,
                    triggers.c.enabled.is_(True),
                    or_(triggers.c.last_tick.is_(None), triggers.c.last_tick < tick),
                )
                .values(last_tick=tick)
            )
            if moved.rowcount != 1:
                return
            at = datetime.fromtimestamp(tick, UTC)
            data = {"schedule": trigger.source.schedule, "tick": at.isoformat()}  # type: ignore[union-attr]
            event = events.make_event(
                trigger, "tick", data, at=at, event_id=f"{trigger.id}-{int(tick)}"
            )
            await outbox.stage(conn, tenant, [(trigger, event)])
        await outbox.release(platform, tenant, [(trigger, event)])
        self.fired += 1
