"""`triggers.*`: make, read, change, pause, resume and delete triggers, and read their
deliveries. Changing triggers needs `triggers:admin`, reading them `triggers:read`.

A trigger belongs to whoever made it (or last changed its target): a function target runs as
them, so making one needs `functions:execute` held, and a URL target must be a destination
tenants may reach (`ROOST_WEBHOOK_ALLOW`; loopback and private addresses are refused unless
listed). A URL target gets a new signing secret, shown in the answer once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import trigger_deliveries, triggers, utcnow
from roost.errors import APIError, ConflictError, NotFoundError, ValidationError
from roost.services.context import Context
from roost.services.database.filters import table_conditions
from roost.services.feeds import Feed, Push, opening
from roost.services.functions import specs
from roost.services.functions.invocations import EXECUTE_SCOPE
from roost.services.outbound import AllowList, OutboundRefused
from roost.services.registry import operation, subscription
from roost.services.schema import load_schema
from roost.services.security import new_id
from roost.services.triggers import cron, model
from roost.services.triggers.model import decode_row
from roost.services.triggers.secrets import new_secret, seal
from roost.wire.common import Done
from roost.wire.triggers import (
    CreateTriggerRequest,
    CronSource,
    DatabaseSource,
    DeliveriesRequest,
    Delivery,
    DeliveryList,
    FunctionTarget,
    ListTriggersRequest,
    QueueSource,
    Source,
    StreamSource,
    Target,
    Trigger,
    TriggerRef,
    UpdateTriggerRequest,
    UrlTarget,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

ADMIN = "triggers:admin"
READ = "triggers:read"
_WATCH_GAP = 0.25
"""A deliveries watcher reads at most this often, on the quarter seconds of the loop's clock:
what is announced meanwhile is one read, and the watchers of one trigger read together."""
_READING: dict[tuple[int, str, str, frozenset[str]], asyncio.Future[list[Delivery]]] = {}
"""The reads of announced deliveries under way (by platform, tenant, trigger and ids), shared
by the watchers that ask for the same meanwhile."""


@operation("triggers.create", scope=ADMIN)
async def create(ctx: Context, params: CreateTriggerRequest) -> Trigger:
    """Make a trigger: events of `source` go to `target`. A URL target's signing secret is
    in this answer only."""
    principal = ctx.require_principal()
    await _check(ctx, params.source, params.target)
    trigger_id = new_id()
    secret = new_secret() if isinstance(params.target, UrlTarget) else None
    now = utcnow()
    row = {
        "id": trigger_id,
        "name": params.name,
        "description": params.description,
        "source_kind": _kind(params.source),
        "source": msgspec.to_builtins(params.source),
        "target_kind": _kind(params.target),
        "target": msgspec.to_builtins(params.target),
        "secret_sealed": None
        if secret is None
        else await seal(ctx.platform, ctx.tenant, trigger_id, secret),
        "enabled": params.enabled,
        "owner_id": principal.user_id,
        "owner_name": principal.username,
        "last_tick": await _start(ctx, params.source),
        "created_at": now,
        "updated_at": now,
    }
    most = ctx.platform.settings.triggers_max_per_tenant
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            if (await conn.scalar(select(func.count()).select_from(triggers)) or 0) >= most:
                raise ValidationError(
                    f"a tenant has at most {most} triggers (ROOST_TRIGGERS_MAX_PER_TENANT)",
                    code="too_many_triggers",
                    details={"field": "name"},
                )
            await conn.execute(triggers.insert().values(row))
    except IntegrityError:
        raise ConflictError(
            f"a trigger named {params.name!r} exists", details={"field": "name"}
        ) from None
    await model.changed(ctx.platform, ctx.tenant)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        made = await _row(conn, params.name)
    return _wire(made, secret)


@operation("triggers.list", scope=READ, read_only=True)
async def list_triggers(ctx: Context, params: ListTriggersRequest) -> list[Trigger]:
    """The tenant's triggers by name, of one source kind or all."""
    query = select(triggers).order_by(triggers.c.name)
    if params.source_kind is not None:
        query = query.where(triggers.c.source_kind == params.source_kind)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_wire(row) for row in rows]


@operation("triggers.get", scope=READ, read_only=True)
async def get(ctx: Context, params: TriggerRef) -> Trigger:
    """One trigger by name."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return _wire(await _row(conn, params.name))


@operation("triggers.update", scope=ADMIN)
async def update_trigger(ctx: Context, params: UpdateTriggerRequest) -> Trigger:
    """Change what is given of a trigger. A new target makes the caller its owner (and a new
    URL target gets a new secret, in this answer); a new cron schedule counts from now."""
    principal = ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        current = decode_row(await _row(conn, params.name))
    source = params.source if params.source is not None else current.source
    target = params.target if params.target is not None else current.target
    await _check(ctx, source, target)
    values: dict[str, Any] = {"updated_at": utcnow()}
    secret = None
    if params.source is not None:
        values |= {"source_kind": _kind(source), "source": msgspec.to_builtins(source)}
        values["last_tick"] = await _start(ctx, source)
    if params.target is not None:
        values |= {"target_kind": _kind(target), "target": msgspec.to_builtins(target)}
        values |= {"owner_id": principal.user_id, "owner_name": principal.username}
        secret = new_secret() if isinstance(target, UrlTarget) else None
        values["secret_sealed"] = (
            None if secret is None else await seal(ctx.platform, ctx.tenant, current.id, secret)
        )
    if params.description is not None:
        values["description"] = params.description
    if params.enabled is not None:
        values["enabled"] = params.enabled
    return await _change(ctx, params.name, values, secret)


@operation("triggers.pause", scope=ADMIN)
async def pause(ctx: Context, params: TriggerRef) -> Trigger:
    """Stop a trigger taking events (those it took are still delivered)."""
    return await _change(ctx, params.name, {"enabled": False, "updated_at": utcnow()})


@operation("triggers.resume", scope=ADMIN)
async def resume(ctx: Context, params: TriggerRef) -> Trigger:
    """Take events again; cron ticks and stream events count from now (those of the pause
    are not fired)."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        current = decode_row(await _row(conn, params.name))
    values = {
        "enabled": True,
        "updated_at": utcnow(),
        "last_tick": await _start(ctx, current.source),
    }
    return await _change(ctx, params.name, values)


@operation("triggers.delete", scope=ADMIN)
async def delete_trigger(ctx: Context, params: TriggerRef) -> Done:
    """Delete a trigger and its deliveries; events of it still queued are dropped."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        found = await _row(conn, params.name)
        await conn.execute(
            delete(trigger_deliveries).where(trigger_deliveries.c.trigger_id == found["id"])
        )
        await conn.execute(delete(triggers).where(triggers.c.id == found["id"]))
    await model.changed(ctx.platform, ctx.tenant)
    return Done()


@operation("triggers.deliveries", scope=READ, read_only=True)
async def deliveries(ctx: Context, params: DeliveriesRequest) -> DeliveryList:
    """A trigger's deliveries, newest first: each event's status (`pending`, `delivered`,
    `failed`), attempts, last HTTP status and error, and the last attempt's duration."""
    table = trigger_deliveries
    async with ctx.platform.db.read(ctx.tenant) as conn:
        found = await _row(conn, params.name)
        where = [table.c.trigger_id == found["id"]]
        if params.status is not None:
            where.append(table.c.status == params.status)
        query = (
            select(table)
            .where(*where)
            .order_by(table.c.created_at.desc(), table.c.id)
            .limit(params.limit)
            .offset(params.offset)
        )
        rows = (await conn.execute(query)).mappings().all()
        total = await conn.scalar(select(func.count()).select_from(table).where(*where))
    return DeliveryList(results=[_delivery(row) for row in rows], count=int(total or 0))


@subscription("triggers.watch_deliveries", scope=READ, event=Delivery)
async def open_deliveries_watch(ctx: Context, params: TriggerRef, push: Push) -> Feed:
    """A live feed of a trigger's deliveries: each delivery as it is made, then again each
    time it changes (status, attempts, last error). Those from before come from
    `triggers.deliveries`, read once subscribed."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        trigger_id: str = (await _row(conn, params.name))["id"]
    inbox: asyncio.Queue[list[str]] = asyncio.Queue()

    def announced(raw: bytes) -> None:
        pairs = msgspec.json.decode(raw, type=list[tuple[str, str]])
        ids = [event_id for trigger, event_id in pairs if trigger == trigger_id]
        if ids:
            inbox.put_nowait(ids)

    async with opening() as feed:
        feed.on_close(ctx.platform.bus.listen(model.deliveries_channel(ctx.tenant), announced))

    async def follow() -> None:
        loop = asyncio.get_running_loop()
        while True:
            ids = set(await inbox.get())
            await asyncio.sleep(_WATCH_GAP - loop.time() % _WATCH_GAP)
            while not inbox.empty():  # what piled up meanwhile: one read
                ids.update(inbox.get_nowait())
            for delivery in await _shared_read(ctx, trigger_id, frozenset(ids)):
                push(delivery)

    feed.run(follow)
    return feed


async def _shared_read(ctx: Context, trigger_id: str, ids: frozenset[str]) -> list[Delivery]:
    """These deliveries of the trigger, from the same read under way if a watcher began it."""
    key = (id(ctx.platform), ctx.tenant, trigger_id, ids)
    reading = _READING.get(key)
    if reading is None:
        reading = _READING[key] = asyncio.ensure_future(_read(ctx, trigger_id, ids))
        reading.add_done_callback(lambda _: _READING.pop(key, None))
    return await asyncio.shield(reading)


async def _read(ctx: Context, trigger_id: str, ids: frozenset[str]) -> list[Delivery]:
    table = trigger_deliveries
    query = (
        select(table)
        .where(table.c.trigger_id == trigger_id, table.c.id.in_(sorted(ids)))
        .order_by(table.c.created_at, table.c.id)
    )
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_delivery(row) for row in rows]


async def _start(ctx: Context, source: Source) -> float | None:
    """Where a source's cursor starts: now for a schedule, the newest event of a room."""
    if isinstance(source, CronSource):
        return ctx.platform.clock.time()
    if isinstance(source, StreamSource):
        page = await ctx.platform.streams.read(f"{ctx.tenant}:{source.room}", -1, None, 1)
        return float(page.newest)
    return None


# -- checks ---------------------------------------------------------------------------------


async def _check(ctx: Context, source: Source, target: Target) -> None:
    if isinstance(source, CronSource):
        cron.check(source)
    elif isinstance(source, DatabaseSource):
        await _check_table(ctx, source)
    elif isinstance(source, QueueSource) and not isinstance(target, FunctionTarget):
        raise ValidationError(
            "a queue source needs a function target (it acks what the function handled)",
            details={"field": "target.kind"},
        )
    if isinstance(target, FunctionTarget):
        ctx.require_held([EXECUTE_SCOPE])
        try:
            await specs.active_spec(ctx.platform, ctx.tenant, target.name)
        except NotFoundError:
            raise NotFoundError(
                f"no function named {target.name!r}", details={"field": "target.name"}
            ) from None
    else:
        allow = AllowList.parse(ctx.platform.settings.webhook_allow)
        try:
            await allow.resolve(target.url)
        except OutboundRefused as exc:
            raise ValidationError(
                exc.message, code=exc.code, details={"field": "target.url"}
            ) from None


async def _check_table(ctx: Context, source: DatabaseSource) -> None:
    schema = await load_schema(ctx.platform, ctx.tenant)
    try:
        definition = schema.definition(source.table)
        table_conditions(
            definition, schema.tables[source.table], source.filters, ctx.platform.db.dialect
        )
    except APIError as exc:
        field = str(exc.details.get("field", "table"))
        raise type(exc)(exc.message, details={**exc.details, "field": f"source.{field}"}) from None
    if definition.secure:
        raise ValidationError(
            f"table {source.table!r} is secure: its reads must name a reason and an actor, "
            "so no trigger follows it",
            details={"field": "source.table"},
        )


# -- rows -----------------------------------------------------------------------------------


async def _change(
    ctx: Context, name: str, values: dict[str, Any], secret: str | None = None
) -> Trigger:
    async with ctx.platform.db.write(ctx.tenant) as conn:
        moved = await conn.execute(update(triggers).where(triggers.c.name == name).values(values))
        if moved.rowcount != 1:
            raise _missing(name)
        row = await _row(conn, name)
    await model.changed(ctx.platform, ctx.tenant)
    return _wire(row, secret)


async def _row(conn: AsyncConnection, name: str) -> RowMapping:
    row = (await conn.execute(select(triggers).where(triggers.c.name == name))).mappings().first()
    if row is None:
        raise _missing(name)
    return row


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"no trigger named {name!r}", details={"field": "name"})


def _kind(value: Source | Target) -> str:
    tag: str = type(value).__struct_config__.tag  # type: ignore[assignment]
    return tag


def _wire(row: RowMapping, secret: str | None = None) -> Trigger:
    decoded = decode_row(row)
    return Trigger(
        name=decoded.name,
        description=decoded.description,
        source=decoded.source,
        target=decoded.target,
        enabled=decoded.enabled,
        owner=decoded.owner_name,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        secret=secret,
    )


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=row["id"],
        status=row["status"],
        attempts=row["attempts"],
        status_code=row["status_code"],
        last_error=row["last_error"],
        duration_ms=row["duration_ms"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
