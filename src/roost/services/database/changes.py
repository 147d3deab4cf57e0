"""Change feeds of tables, on top of event streams.

While a table has subscribers, every insert, update and delete made through the API is
appended, inside the write's own transaction (so events follow commit order), to the tenant's
stream room `$db:<table>` (a name no user room can take). `database.subscribe` is a stream
subscription to that room, filtered by kind of change, so it resumes after a reconnect like any
stream. Interest lingers `LINGER` seconds after the last subscriber leaves, so a client that
reconnects within that time misses nothing; a table nobody follows pays nothing on writes.
Secure tables have no feed: their reads must name a reason and an actor, and are audited.
A table bound to policies delivers each subscriber only the events whose record they may
`read`, checked as each is delivered (so a policy change holds from the next event).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection

from roost.backends.stream import Retention
from roost.errors import SecureTableError
from roost.services import guards, stream
from roost.services.context import Context, PendingAnswer
from roost.services.feeds import Feed, Push
from roost.services.policystore import policy_guard
from roost.services.registry import subscription
from roost.services.schema import load_schema
from roost.services.tabledefs import TableDef
from roost.services.triggers import events as trigger_events
from roost.services.triggers import outbox
from roost.services.triggers.model import TriggerRow
from roost.wire.database import TableSubscribeRequest
from roost.wire.stream import StreamEvent, StreamSubscribeRequest

ROOM_PREFIX = "$db:"
LINGER = 120.0

_dropping: set[asyncio.Task[None]] = set()  # tasks are weakly held by the loop; timers are not

Change = Literal["insert", "update", "delete"]
Rows = list[dict[str, Any]]
C = TypeVar("C", Connection, sqlite3.Connection)


async def write_with_changes(
    ctx: Context,
    definition: TableDef,
    change: Change,
    work: Callable[[Connection], list[dict[str, Any]]],
    before: Callable[[Connection], list[dict[str, Any]]] | None = None,
    *,
    small: bool = False,
    on_driver: Callable[[sqlite3.Connection], list[dict[str, Any]]] | None = None,
    answer: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run `work` in one write transaction of the tenant's database and return the rows it
    returns, which are the rows it changed: one event `{"table", "record"}` per row goes to
    the table's feed (for a delete, the record holds only the primary key), and one event
    per row to each trigger that follows the table (`triggers/events.py`), with the records
    as `before` reads them in the same transaction ahead of `work` as the old ones.

    A table nobody follows takes `Database.run(write=True)`: on SQLite the write shares a
    group commit with those queued beside it. A followed table's writes go one at a time and
    append their events before they commit, so that the events follow commit order.
    Trigger events are written to the outbox in the write's transaction (a write that rolls
    back fires nothing, one that commits loses none), then queued after the commit and before
    the write answers (`triggers/outbox.py`). `small`: a few rows named by key (see
    `Database.run`). `on_driver`: `work` written with prebuilt statements for SQLite's
    driver (`Database.run_on_driver`), run in its place when the table has no follower.

    `answer`: what the call answers, made of the rows. A call with an Idempotency-Key
    (`ctx.pending_answer`) has its record written with it in this transaction."""
    if answer is not None and (pending := ctx.pending_answer) is not None:
        ctx.pending_answer = None  # one write answers the call
        work = _answering(pending, answer, work)
        if on_driver is not None:
            on_driver = _answering(pending, answer, on_driver)
    db, key = ctx.platform.db, _interest_key(ctx, definition.name)
    hooks = await trigger_events.table_triggers(ctx.platform, ctx.tenant, definition.name)
    followed = await _followed(ctx, key, definition)
    if not followed and not hooks:
        if on_driver is not None:
            return await db.run_on_driver(ctx.tenant, on_driver, small=small)
        return await db.run(ctx.tenant, work, write=True, small=small)
    table = (await load_schema(ctx.platform, ctx.tenant)).tables[definition.name]
    dialect = db.dialect
    matched: dict[str, set[Any]] = {}
    old: list[dict[str, Any]] = []
    events: list[tuple[TriggerRow, dict[str, Any]]] = []
    if hooks:
        await outbox.mark(ctx.platform, ctx.tenant)
    async with db.write(ctx.tenant, serial=key) as conn:
        if hooks and before is not None:
            old = await conn.run_sync(before)
            if change == "delete":
                matched = await conn.run_sync(
                    lambda c: trigger_events.matching(c, hooks, definition, table, old, dialect)
                )
        rows = await conn.run_sync(work)
        if hooks and change != "delete":
            matched = await conn.run_sync(
                lambda c: trigger_events.matching(c, hooks, definition, table, rows, dialect)
            )
        if hooks:
            events = trigger_events.database_events(
                hooks, definition, change, old, rows, matched, ctx.now()
            )
            await outbox.stage(conn, ctx.tenant, events)
        if followed:
            await _append(ctx, definition, change, rows)
    await outbox.release(ctx.platform, ctx.tenant, events)
    return rows


def _answering(
    pending: PendingAnswer,
    answer: Callable[[list[dict[str, Any]]], Any],
    write: Callable[[C], Rows],
) -> Callable[[C], Rows]:
    """`write` (on SQLAlchemy's connection or the driver's) claiming the call's idempotency
    record before it changes anything, and sealing its answer into it after."""

    def answered(conn: C) -> Rows:
        pending.claim(conn)
        rows = write(conn)
        pending.answer(conn, 200, answer(rows))
        return rows

    return answered


async def _followed(ctx: Context, key: str, definition: TableDef) -> bool:
    if definition.secure:
        return False
    return bool((await ctx.platform.bus.interest(key)).get(key))


async def _append(
    ctx: Context, definition: TableDef, change: Change, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    settings = ctx.platform.settings
    retention = Retention(settings.change_feed_max_events, settings.change_feed_max_age)
    events: list[tuple[str, Any, dict[str, str]]] = [
        (change, {"table": definition.name, "record": row}, {}) for row in rows
    ]
    await stream.append(ctx, ROOM_PREFIX + definition.name, events, retention)


@subscription("database.subscribe", scope="database:read", event=StreamEvent)
async def open_table_feed(ctx: Context, params: TableSubscribeRequest, push: Push) -> Feed:
    """A live feed of a table's changes of the kinds in `params.events`."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table)
    if definition.secure:
        raise SecureTableError(
            f"table {definition.name!r} is secure and has no change feed: each read of it "
            "must carry a reason and an actor",
            details={"table": definition.name},
        )
    kinds = set(params.events)
    bus, key = ctx.platform.bus, _interest_key(ctx, definition.name)
    room = StreamSubscribeRequest(
        room=ROOM_PREFIX + definition.name, from_offset=params.from_offset
    )
    try:
        await bus.add_interest(key)  # counts at once, so the drop below always matches it
        feed = await stream.open_stream_feed(
            ctx, room, push, wanted=_wanted(ctx, definition, kinds)
        )
    except BaseException:
        await bus.drop_interest(key)
        raise
    feed.on_close(lambda: _later(LINGER, lambda: bus.drop_interest(key)))
    return feed


def _wanted(
    ctx: Context, definition: TableDef, kinds: set[Change]
) -> Callable[[StreamEvent], Awaitable[bool]]:
    """Events of the kinds asked for; of a table bound to policies, only those whose record
    the subscriber may `read` by the policies in force as each is delivered (a delete event
    of a bound table carries the deleted record for this)."""
    key = definition.primary_key.name

    async def wanted(event: StreamEvent) -> bool:
        if event.event_type not in kinds:
            return False
        guard = await policy_guard(ctx, "table", definition.name)
        if guard is None:
            return True
        record = event.data.get("record") if isinstance(event.data, dict) else None
        if not isinstance(record, dict):
            return False
        return guards.allows(ctx, guard, "read", str(record.get(key, "")), record)

    return wanted


def _interest_key(ctx: Context, table: str) -> str:
    return f"changes:{ctx.tenant}:{table}"


def _later(seconds: float, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = asyncio.get_running_loop()

    def run() -> None:
        task = loop.create_task(work())
        _dropping.add(task)
        task.add_done_callback(_dropping.discard)

    loop.call_later(seconds, run)
