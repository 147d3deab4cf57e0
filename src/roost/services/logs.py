"""Structured logs, per tenant: applications write entries (level, message, data, category,
exception, where in their code), admins query them, newest first, or tail them live
(`logs.tail`: each write publishes its entries on the bus, so a tail on any replica sees
them). Entries older than
`ROOST_LOGS_MAX_AGE` are swept by the writes of each server, at most once per hundredth of
that age (and at least hourly)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import func, select

from roost.backends.sql.tables import logs
from roost.errors import ValidationError
from roost.services.caching import TenantCache
from roost.services.context import Context
from roost.services.feeds import Feed, Push, opening
from roost.services.registry import operation, subscription
from roost.wire.common import Done
from roost.wire.logs import (
    LEVELS,
    Level,
    LogEntry,
    LogPage,
    LogQuery,
    LogSource,
    LogTailRequest,
    WriteLogsRequest,
)

_DATA_LIMIT = 64 * 1024
_SWEPT = TenantCache[bool]("logs.swept", ttl=3600)  # tenants whose old entries went lately
_LEVEL_NAMES: dict[int, Level] = {number: name for name, number in LEVELS.items()}
# a write's entries go to tails whole up to this size; past it without their data and
# exception (a tail shows the line, `logs.query` has the rest), so one call of 1000 entries
# of 64 KiB data each does not put 64 MB on the bus
_TAIL_MAX_BYTES = 1024 * 1024
_ENTRIES = msgspec.json.Decoder(list[LogEntry])


def _channel(tenant: str) -> str:
    return f"logs:{tenant}"


@operation("logs.write", scope="logs:write")
async def write(ctx: Context, params: WriteLogsRequest) -> Done:
    """Write log entries (up to 1000 in one call), stamped with the server's time and the
    caller's name."""
    principal = ctx.require_principal()
    now = ctx.now()
    rows: list[dict[str, Any]] = []
    for n, entry in enumerate(params.entries):
        size = len(msgspec.json.encode(entry.data))
        if size > _DATA_LIMIT:
            raise ValidationError(
                f"entries[{n}].data is {size} bytes of JSON; the limit is {_DATA_LIMIT}",
                details={"field": f"entries[{n}].data", "limit": _DATA_LIMIT},
            )
        rows.append(
            {
                "at": now,
                "level_no": LEVELS[entry.level],
                "category": entry.category,
                "message": entry.message,
                "data": entry.data,
                "exception": entry.exception,
                "source": msgspec.to_builtins(entry.source) if entry.source else None,
                "username": principal.username,
            }
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        inserted = await conn.execute(
            logs.insert().returning(logs.c.id, sort_by_parameter_order=True), rows
        )
        ids = list(inserted.scalars())
        max_age = ctx.platform.settings.logs_max_age
        swept = _SWEPT.of(ctx.platform)
        if not swept.get(ctx.tenant):
            swept.put(ctx.tenant, True, ttl=min(max_age / 100, 3600))
            await conn.execute(logs.delete().where(logs.c.at < now - timedelta(seconds=max_age)))
    await ctx.platform.bus.publish(_channel(ctx.tenant), _for_tails(ids, rows))
    return Done(count=len(rows))


def _for_tails(ids: list[int], rows: list[dict[str, Any]]) -> bytes:
    entries = [_entry({**row, "id": id_}) for id_, row in zip(ids, rows, strict=True)]
    payload = msgspec.json.encode(entries)
    if len(payload) > _TAIL_MAX_BYTES:
        for entry in entries:
            entry.data, entry.exception = None, None
        payload = msgspec.json.encode(entries)
    return payload


def _entry(row: Any) -> LogEntry:
    return LogEntry(
        id=row["id"],
        at=row["at"],
        level=_LEVEL_NAMES.get(row["level_no"], "info"),
        category=row["category"],
        message=row["message"],
        data=row["data"],
        exception=row["exception"],
        source=msgspec.convert(row["source"], LogSource) if row["source"] else None,
        username=row["username"],
    )


@subscription("logs.tail", scope="logs:read", event=LogEntry)
async def open_log_tail(ctx: Context, params: LogTailRequest, push: Push) -> Feed:
    """A live feed of the entries written from now on that pass the filters (`level`: that
    level and above; `category`; `search`: part of the message, in any case)."""
    least = LEVELS[params.level] if params.level else 0
    search = params.search.lower() if params.search else None

    def deliver(raw: bytes) -> None:
        for entry in _ENTRIES.decode(raw):
            if LEVELS[entry.level] < least:
                continue
            if params.category is not None and entry.category != params.category:
                continue
            if search is not None and search not in entry.message.lower():
                continue
            push(entry)

    async with opening() as feed:
        feed.on_close(ctx.platform.bus.listen(_channel(ctx.tenant), deliver))
    return feed


@operation("logs.query", scope="logs:read", read_only=True)
async def query(ctx: Context, params: LogQuery) -> LogPage:
    """Entries newest first. `level`: that level and above; `search`: part of the message, in
    any case; `since`/`until`: a time range; pass `next_cursor` back for older entries."""
    statement = select(logs).order_by(logs.c.id.desc()).limit(params.limit + 1)
    if params.level is not None:
        statement = statement.where(logs.c.level_no >= LEVELS[params.level])
    if params.category is not None:
        statement = statement.where(logs.c.category == params.category)
    if params.since is not None:
        statement = statement.where(logs.c.at >= params.since)
    if params.until is not None:
        statement = statement.where(logs.c.at < params.until)
    if params.search is not None:
        statement = statement.where(
            func.lower(logs.c.message).contains(params.search.lower(), autoescape=True)
        )
    if params.cursor is not None:
        if not params.cursor.isdigit():
            raise ValidationError("cursor is not one this server gave", details={"field": "cursor"})
        statement = statement.where(logs.c.id < int(params.cursor))
    await ctx.platform.function_records.flush()  # the output of the sync runs answered here
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(statement)).mappings().all()
    page = rows[: params.limit]
    return LogPage(
        entries=[_entry(row) for row in page],
        next_cursor=str(page[-1]["id"]) if len(rows) > params.limit else None,
    )
