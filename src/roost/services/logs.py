"""Structured logs, per tenant: applications write entries (level, message, data, category,
exception, where in their code), admins query them, newest first. Entries older than
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
from roost.services.registry import operation
from roost.wire.common import Done
from roost.wire.logs import (
    LEVELS,
    Level,
    LogEntry,
    LogPage,
    LogQuery,
    LogSource,
    WriteLogsRequest,
)

_DATA_LIMIT = 64 * 1024
_SWEPT = TenantCache[bool]("logs.swept", ttl=3600)  # tenants whose old entries went lately
_LEVEL_NAMES: dict[int, Level] = {number: name for name, number in LEVELS.items()}


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
        await conn.execute(logs.insert(), rows)
        max_age = ctx.platform.settings.logs_max_age
        swept = _SWEPT.of(ctx.platform)
        if not swept.get(ctx.tenant):
            swept.put(ctx.tenant, True, ttl=min(max_age / 100, 3600))
            await conn.execute(logs.delete().where(logs.c.at < now - timedelta(seconds=max_age)))
    return Done(count=len(rows))


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
        entries=[
            LogEntry(
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
            for row in page
        ],
        next_cursor=str(page[-1]["id"]) if len(rows) > params.limit else None,
    )
